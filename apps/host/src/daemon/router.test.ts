// The router through createCaller, without HTTP or KVM: auth, validation,
// confinement, state preconditions, and that a refused create leaves nothing.
import assert from "node:assert/strict";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TRPCError } from "@trpc/server";
import { Daemon } from "./daemon";
import { createCaller } from "./router";

const root = mkdtempSync(path.join(tmpdir(), "virgad-router-"));
const images = path.join(root, "images");
const kernel = path.join(images, "kernel.elf");
let daemon: Daemon;

const smp = { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 };
const config = { kernel, smp, memoryBytes: 64 * 1024 * 1024 };

async function rejectsWith(call: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof TRPCError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

before(async () => {
  mkdirSync(images);
  writeFileSync(kernel, "not really a kernel");
  writeFileSync(path.join(root, "outside.img"), Buffer.alloc(512));
  symlinkSync(path.join(root, "outside.img"), path.join(images, "link.img"));
  copyFileSync(kernel, path.join(images, "disk.img"));
  daemon = await Daemon.open({
    runDir: path.join(root, "run"),
    imageDirs: [images],
    controlHost: false,
  });
});

after(async () => {
  await daemon.close();
  rmSync(root, { recursive: true, force: true });
});

describe("router (createCaller)", () => {
  it("refuses a caller without the token", async () => {
    const caller = createCaller({ daemon, scope: null, ws: null });
    await rejectsWith(caller.vm.list(), "UNAUTHORIZED", /bearer token/);
  });

  it("creates, lists, gets and deletes a VM", async () => {
    const caller = createCaller({ daemon, scope: "full", ws: null });
    const created = await caller.vm.create({ id: "one", name: "First", config });
    assert.equal(created.state, "created");
    assert.equal(created.name, "First");
    assert.equal(created.config.kernel, kernel);
    assert.deepEqual(
      (await caller.vm.list()).map((vm) => vm.id),
      ["one"],
    );
    assert.equal((await caller.vm.get({ id: "one" })).id, "one");
    await rejectsWith(caller.vm.create({ id: "one", config }), "CONFLICT", /already exists/);
    await rejectsWith(
      caller.vm.pause({ id: "one" }),
      "PRECONDITION_FAILED",
      /cannot pause VM 'one': it is created/,
    );
    await rejectsWith(
      caller.vm.consoleInput({ id: "one", data: "x" }),
      "PRECONDITION_FAILED",
      /it is created/,
    );
    await rejectsWith(
      caller.vm.qmp({ id: "one", execute: "query-status" }),
      "PRECONDITION_FAILED",
      /it is created/,
    );
    assert.deepEqual(await caller.vm.delete({ id: "one" }), { id: "one" });
    await rejectsWith(caller.vm.get({ id: "one" }), "NOT_FOUND", /no VM with id 'one'/);
  });

  it("names the problem and leaves nothing behind when a create is refused", async () => {
    const caller = createCaller({ daemon, scope: "full", ws: null });
    await rejectsWith(
      caller.vm.create({ id: "bad", config: { ...config, memoryBytes: 3 } }),
      "BAD_REQUEST",
      /config\.memoryBytes/,
    );
    await rejectsWith(caller.vm.create({ id: "Bad Id", config }), "BAD_REQUEST", /^id: /);
    const disk = (file: string) => ({
      ...config,
      drives: [{ id: "d0", file, readOnly: false, direct: false }],
      devices: [{ driver: "virtio-blk-device" as const, id: "d0", drive: "d0" }],
    });
    await rejectsWith(
      caller.vm.create({ id: "out", config: disk(path.join(root, "outside.img")) }),
      "FORBIDDEN",
      /config\.drives\.0\.file: '.*outside\.img' is outside the image directories/,
    );
    await rejectsWith(
      caller.vm.create({ id: "dots", config: disk(`${images}/../outside.img`) }),
      "FORBIDDEN",
      /config\.drives\.0\.file: .*is outside/,
    );
    await rejectsWith(
      caller.vm.create({ id: "link", config: disk(path.join(images, "link.img")) }),
      "FORBIDDEN",
      /link\.img' resolves to '.*outside\.img'/,
    );
    assert.deepEqual(readdirSync(path.join(root, "run", "vms")), []);
    assert.deepEqual(await caller.vm.list(), []);
  });

  it("confines host paths in raw QMP too", async () => {
    const caller = createCaller({ daemon, scope: "full", ws: null });
    await caller.vm.create({ id: "q", config });
    await rejectsWith(
      caller.vm.qmp({
        id: "q",
        execute: "blockdev-add",
        arguments: { "node-name": "x", file: { driver: "file", filename: "/etc/shadow" } },
      }),
      "FORBIDDEN",
      /arguments\.file\.filename: '\/etc\/shadow' is outside/,
    );
    await caller.vm.delete({ id: "q" });
  });

  it("reports the host's facts", async () => {
    const caller = createCaller({ daemon, scope: "full", ws: null });
    const info = await caller.host.info();
    assert.ok(info.cpus >= 1);
    assert.ok(info.memoryBytes > 0);
    assert.equal(typeof info.kvm.present, "boolean");
    assert.deepEqual(info.vms, []);
  });
});
