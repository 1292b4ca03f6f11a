// virgad's raw QMP (`vm.qmp`) against a real VM: allowed commands are
// answered exactly as the VM answers them; everything else — commands not
// in the allow-list and arguments naming files or addresses they may not —
// is refused naming the field, and never reaches the VM (its log, which
// names every command it runs, shows none of them).
import assert from "node:assert/strict";
import { readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { TRPCClientError } from "@trpc/client";
import { QmpClient } from "../../src/qmp/client";
import { requireKvmHost } from "../support/guest";
import { ConsoleWatcher, withVirgad } from "./harness";

describe("virgad raw QMP allow-list", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "answers allowed commands as the VM does and refuses the rest before the VM",
    { timeout: 60000 },
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        await client.vm.create.mutate({ id: "g", config: fx.probeConfig() });
        const serial = new ConsoleWatcher(client, "g");
        fx.track((await client.vm.start.mutate({ id: "g" })).pid);
        await serial.waitFor(/PROBE ready/);
        const vmDir = path.join(fx.runDir, "vms", "g");
        const qmp = (execute: string, args?: unknown) =>
          client.vm.qmp.mutate({
            id: "g",
            execute,
            ...(args === undefined ? {} : { arguments: args }),
          });

        // Allowed: the VM's own answer, as a client on its socket gets it.
        const direct = await QmpClient.connect(path.join(vmDir, "qmp.sock"));
        const directReply = await direct.request("query-hotpluggable-cpus");
        assert.deepEqual(await qmp("query-hotpluggable-cpus"), { return: directReply.return });
        assert.deepEqual(await qmp("stop"), { return: {} });
        assert.deepEqual(await qmp("query-status"), {
          return: { running: false, singlestep: false, status: "paused" },
        });
        assert.deepEqual(await qmp("cont"), { return: {} });
        assert.deepEqual(await qmp("query-status", { bogus: 1 }), {
          error: { class: "GenericError", desc: "Parameter 'bogus' is unexpected" },
        });

        const outside = path.join(fx.tmp.dir, "outside.img");
        writeFileSync(outside, "x");
        const refused: [string, unknown, string, RegExp][] = [
          [
            "getfd",
            { fdname: "x" },
            "FORBIDDEN",
            /^execute: 'getfd' is not allowed through the gateway: /,
          ],
          [
            "human-monitor-command",
            { "command-line": "info" },
            "FORBIDDEN",
            /'human-monitor-command' is not allowed/,
          ],
          ["query-unknown", undefined, "FORBIDDEN", /^execute: 'query-unknown' is not allowed/],
          ["query-status", [1], "BAD_REQUEST", /^arguments: expected an object$/],
          [
            "blockdev-add",
            { "node-name": "d1", file: { driver: "file", filename: outside } },
            "FORBIDDEN",
            /^arguments\.file\.filename: '.*outside\.img' is outside the image directories/,
          ],
          [
            "blockdev-add",
            { "node-name": "d1", file: "drive-0" },
            "FORBIDDEN",
            /^arguments\.file: a reference to another node/,
          ],
          [
            "blockdev-add",
            { "node-name": "d1", driver: "file", filename: outside },
            "FORBIDDEN",
            /^arguments\.filename: not allowed/,
          ],
          [
            "blockdev-add",
            { "node-name": "d1", file: { driver: "nbd", filename: outside } },
            "FORBIDDEN",
            /^arguments\.file\.driver: 'nbd' is not allowed/,
          ],
          [
            "migrate",
            { uri: "exec:touch /tmp/pwned" },
            "FORBIDDEN",
            /^arguments\.uri: 'exec:' is not allowed/,
          ],
          ["migrate", { uri: "fd:mig" }, "FORBIDDEN", /^arguments\.uri: 'fd:' is not allowed/],
          [
            "migrate",
            { uri: `file:${fx.tmp.dir}/snap` },
            "FORBIDDEN",
            /^arguments\.uri: .* is outside/,
          ],
          ["netdev_add", { id: "n", fd: "tap" }, "FORBIDDEN", /^arguments\.fd: not allowed/],
          [
            "netdev_add",
            { id: "n", ifname: "../tap" },
            "BAD_REQUEST",
            /^arguments\.ifname: .* is not an interface name/,
          ],
        ];
        for (const [execute, args, code, message] of refused) {
          await assert.rejects(qmp(execute, args), (error: unknown) => {
            assert.ok(error instanceof TRPCClientError, String(error));
            assert.equal((error.data as { code?: string } | undefined)?.code, code, error.message);
            assert.match(error.message, message);
            return true;
          });
        }

        // An allowed blockdev-add goes to the VM with the path resolved
        // (the alias is a symlink inside the image directory).
        const disk = path.join(fx.imagesDir, "disk.img");
        writeFileSync(disk, Buffer.alloc(1 << 20));
        symlinkSync(disk, path.join(fx.imagesDir, "alias.img"));
        assert.deepEqual(
          await qmp("blockdev-add", {
            "node-name": "d2",
            file: { driver: "file", filename: path.join(fx.imagesDir, "alias.img") },
          }),
          { return: {} },
        );
        const devices = (await qmp("virga-query-devices")) as {
          return: { backends: { block: { "node-name": string; file: string }[] } };
        };
        assert.deepEqual(
          devices.return.backends.block.map((b) => [b["node-name"], b.file]),
          [["d2", disk]],
        );
        assert.deepEqual(await qmp("blockdev-del", { "node-name": "d2" }), { return: {} });

        const ran = [...readFileSync(path.join(vmDir, "log"), "utf8").matchAll(/qmp: (\S+)/g)].map(
          (m) => m[1],
        );
        for (const name of ["query-hotpluggable-cpus", "stop", "cont"]) {
          assert.ok(ran.includes(name), `${name} reached the VM: ${ran.join(" ")}`);
        }
        for (const name of [
          "getfd",
          "human-monitor-command",
          "query-unknown",
          "migrate",
          "netdev_add",
        ]) {
          assert.ok(!ran.includes(name), `${name} never reaches the VM: ${ran.join(" ")}`);
        }
        assert.equal(ran.filter((n) => n === "blockdev-add").length, 1, ran.join(" "));
        assert.equal(ran.filter((n) => n === "query-status").length >= 2, true);
        // The guest ran through it all.
        assert.deepEqual(await qmp("query-status"), {
          return: { running: true, singlestep: false, status: "running" },
        });
        direct.close();
      }),
  );
});
