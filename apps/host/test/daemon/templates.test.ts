// Snapshot templates and clones end to end: real virgad, real virga-vmm,
// probe guests. A running probe VM with a disk and a NIC on a bridge is
// snapshotted into a template (and runs on); three clones restored from it
// run at once, each answering on its own console and QMP, each with its own
// copy of the disk (a write in one is seen neither by another nor by the
// template) and its own tap on the bridge with the template's MAC. A clone
// stopped and started again boots from its kernel. Every refusal names
// what is wrong and leaves nothing behind.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { derivedMac } from "../../src/daemon/devices";
import { tapName } from "../../src/daemon/taps";
import { readSector, sectorPattern } from "../support/disk";
import { requireKvmHost } from "../support/guest";
import { requireTaps, testBridge } from "../support/tap";
import {
  ask,
  ConsoleWatcher,
  refused,
  storedConfig,
  waitUntil,
  withVirgad,
  type VirgadFixture,
} from "./harness";

const TEST = { timeout: 120000 };
const MIB = 1024 * 1024;
const testNet = testBridge("vgtpl");
const bridge = testNet.name;

function templateEntries(fx: VirgadFixture): string[] {
  return readdirSync(path.join(fx.runDir, "templates")).sort();
}

describe("virgad templates and clones", () => {
  before(() => {
    requireKvmHost();
    requireTaps();
    testNet.create();
  });

  after(() => {
    testNet.remove();
  });

  it(
    "snapshots a running VM into a template and starts 3 clones of it, each its own VM",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        const image = await client.image.create.mutate({ name: "data.img", sizeBytes: 2 * MIB });
        await client.vm.create.mutate({
          id: "src",
          config: {
            ...fx.probeConfig(),
            drives: [{ id: "data", file: image.path, readOnly: false, direct: false }],
            devices: [{ driver: "virtio-blk-device", id: "data", drive: "data" }],
          },
        });
        const srcConsole = new ConsoleWatcher(client, "src");
        fx.track((await client.vm.start.mutate({ id: "src" })).pid);
        await srcConsole.waitFor(/PROBE ready[\s\S]*probe> $/);
        const nic = await client.vm.attachNic.mutate({ id: "src", bridge, slot: 0 });
        await ask(client, srcConsole, "src", "blk 0 write 3 7", /OK blk write/);
        await ask(client, srcConsole, "src", "blk 0 flush", /OK blk flush/);

        // Refusals first: each leaves nothing behind.
        await refused(
          client.vm.snapshot.mutate({ id: "src", template: "Bad_Name" }),
          "BAD_REQUEST",
          /^template: 'Bad_Name' must match/,
        );
        await refused(
          client.vm.snapshot.mutate({ id: "nope", template: "tpl" }),
          "NOT_FOUND",
          /no VM with id 'nope'/,
        );
        await client.vm.create.mutate({ id: "idle", config: fx.probeConfig() });
        await refused(
          client.vm.snapshot.mutate({ id: "idle", template: "tpl" }),
          "PRECONDITION_FAILED",
          /cannot snapshot VM 'idle': it is created \(needs running or paused\)/,
        );
        assert.deepEqual(templateEntries(fx), []);

        const template = await client.vm.snapshot.mutate({ id: "src", template: "tpl" });
        const dir = path.join(fx.runDir, "templates", "tpl");
        assert.equal(template.dir, dir);
        assert.deepEqual(template.source, { id: "src", name: "src" });
        assert.equal(template.memoryBytes, 64 * MIB);
        assert.equal(template.clonesMade, 0);
        assert.deepEqual(template.nics, [
          { slot: 0, mac: nic.mac, bridge, tap: tapName(path.join(fx.runDir, "vms", "src"), 0) },
        ]);
        assert.equal(template.disks.length, 1);
        assert.equal(template.disks[0]?.sourceFile, image.path);
        assert.equal(template.disks[0].sizeBytes, 2 * MIB);
        assert.ok(template.sizes.memoryFileBytes > 64 * MIB, "the memory file holds all of RAM");
        assert.ok(
          template.sizes.memoryAllocatedBytes < 16 * MIB,
          `the memory file is sparse (${template.sizes.memoryAllocatedBytes} bytes allocated)`,
        );
        assert.deepEqual(readdirSync(dir).sort(), [
          "config.json",
          "disks",
          "memory",
          "meta.json",
          "state",
        ]);
        assert.deepEqual(templateEntries(fx), ["tpl"], "no staging or temporary left");
        // The source runs on (the default) and still answers.
        assert.equal((await client.vm.get.query({ id: "src" })).state, "running");
        await ask(client, srcConsole, "src", "blk 0 verify 3 7", /OK blk verify/);

        await refused(
          client.vm.snapshot.mutate({ id: "src", template: "tpl" }),
          "CONFLICT",
          /template: a template named 'tpl' exists already/,
        );
        await refused(
          client.vm.clone.mutate({ template: "nope", count: 1 }),
          "NOT_FOUND",
          /^template: no template named 'nope'/,
        );
        await refused(
          client.vm.clone.mutate({
            template: "tpl",
            count: 1,
            overrides: { memoryBytes: 128 * MIB },
          }),
          "BAD_REQUEST",
          /^overrides\.memoryBytes: a clone has its template's memory size \(67108864\); 134217728 would change the machine/,
        );
        await refused(
          client.vm.clone.mutate({
            template: "tpl",
            count: 2,
            overrides: { mac: "52:54:00:00:00:01" },
          }),
          "BAD_REQUEST",
          /^overrides\.mac: names one clone's MAC, but count is 2; leave it out and each clone gets its own/,
        );
        await refused(
          client.vm.clone.mutate({ template: "tpl", count: 1, namePrefix: "Web" }),
          "BAD_REQUEST",
          /^namePrefix: 'Web-1' must match/,
        );
        assert.deepEqual(
          (await client.vm.list.query()).map((vm) => vm.id),
          ["src", "idle"],
          "no clone made by a refused call",
        );

        const report = await client.vm.clone.mutate({ template: "tpl", count: 3 });
        for (const clone of report.clones) fx.track(clone.pid);
        assert.equal(report.started, 3, JSON.stringify(report));
        assert.deepEqual(
          report.clones.map((c) => [c.id, c.name, c.state, c.error]),
          [
            ["tpl-1", "tpl-1", "running", null],
            ["tpl-2", "tpl-2", "running", null],
            ["tpl-3", "tpl-3", "running", null],
          ],
        );

        const consoles = new Map<string, ConsoleWatcher>();
        for (const { id } of report.clones) {
          const summary = await client.vm.get.query({ id });
          assert.equal(summary.clonedFrom, "tpl");
          const config = storedConfig(fx, id);
          assert.equal(config.incoming, undefined, "incoming is for the first start only");
          const disk = path.join(fx.runDir, "vms", id, "disks", "0-data.img");
          assert.deepEqual(
            config.drives.map((d) => d.file),
            [disk],
          );
          const tap = tapName(path.join(fx.runDir, "vms", id), 0);
          assert.equal(path.basename(readlinkSync(`/sys/class/net/${tap}/master`)), bridge);
          const status = await client.vm.qmp.mutate({ id, execute: "query-status" });
          assert.deepEqual(status.return, { running: true, singlestep: false, status: "running" });
          const devices = await client.vm.devices.query({ id });
          assert.equal(devices.nics[0]?.ifname, tap);
          // Its own MAC on the bridge, recorded in its config; its guest keeps the template's.
          assert.equal(devices.nics[0].mac, derivedMac(id, 0));
          assert.equal(devices.nics[0].guestMac, nic.mac);
          assert.deepEqual(
            config.devices.map((d) => ("mac" in d ? d.mac : null)),
            [null, derivedMac(id, 0)],
          );
          const console = new ConsoleWatcher(client, id);
          consoles.set(id, console);
          // Restored at the prompt: its shell answers, and its disk holds the template's data.
          await ask(client, console, id, "blk 0 verify 3 7", /OK blk verify/);
          await ask(client, console, id, "net 0 info", new RegExp(`OK net info mac=${nic.mac}`));
        }
        const cloneMacs = new Set(
          await Promise.all(
            report.clones.map(
              async ({ id }) => (await client.vm.devices.query({ id })).nics[0]?.mac,
            ),
          ),
        );
        assert.equal(cloneMacs.size, 3, "every clone has its own MAC");
        assert.deepEqual(
          report.clones.map((c) => c.macs),
          report.clones.map((c) => [derivedMac(c.id, 0)]),
          "the report names them",
        );
        assert.ok(!cloneMacs.has(nic.mac), "and none has the template's");

        // Each clone's disk is its own.
        const c1 = consoles.get("tpl-1");
        const c2 = consoles.get("tpl-2");
        assert.ok(c1 !== undefined && c2 !== undefined);
        await ask(client, c1, "tpl-1", "blk 0 write 5 9", /OK blk write/);
        await ask(client, c1, "tpl-1", "blk 0 flush", /OK blk flush/);
        await ask(client, c2, "tpl-2", "blk 0 verify 5 9", /ERR blk verify mismatch/);
        const pattern = sectorPattern(5, 9);
        assert.deepEqual(
          readSector(path.join(fx.runDir, "vms", "tpl-1", "disks", "0-data.img"), 5),
          pattern,
        );
        assert.notDeepEqual(readSector(path.join(dir, "disks", "0-data.img"), 5), pattern);
        assert.notDeepEqual(readSector(image.path, 5), pattern);

        const listed = await client.template.list.query();
        assert.deepEqual(
          listed.map((t) => [t.name, t.clonesMade, t.clonesStarting]),
          [["tpl", 3, 0]],
        );

        // One clone may be given its MAC.
        const named = await client.vm.clone.mutate({
          template: "tpl",
          count: 1,
          overrides: { mac: "52:54:00:AB:00:01" },
        });
        for (const clone of named.clones) fx.track(clone.pid);
        assert.equal(named.clones[0]?.error, null, JSON.stringify(named));
        const namedNic = (await client.vm.devices.query({ id: "tpl-4" })).nics[0];
        assert.equal(namedNic?.mac, "52:54:00:ab:00:01");
        assert.equal(namedNic.guestMac, nic.mac);

        // A clone stopped and started again boots from its kernel like any VM.
        await client.vm.quit.mutate({ id: "tpl-3" });
        const c3 = consoles.get("tpl-3");
        assert.ok(c3 !== undefined);
        const before = c3.text.length;
        fx.track((await client.vm.start.mutate({ id: "tpl-3" })).pid);
        await waitUntil(
          () => /PROBE boot entry=linux64[\s\S]*PROBE ready/.test(c3.text.slice(before)),
          "tpl-3 to boot again",
        );
        // With the MAC its config recorded, now the guest's own: nothing to translate.
        const rebooted = (await client.vm.devices.query({ id: "tpl-3" })).nics[0];
        assert.equal(rebooted?.mac, derivedMac("tpl-3", 0));
        assert.equal(rebooted.guestMac, undefined);
        await ask(client, c3, "tpl-3", "net 0 info", new RegExp(`OK net info mac=${rebooted.mac}`));

        // Deleting the template leaves running clones running (they map its memory).
        const deleted = await client.template.delete.mutate({ name: "tpl" });
        assert.deepEqual(deleted, { name: "tpl" });
        assert.deepEqual(templateEntries(fx), []);
        await refused(
          client.template.get.query({ name: "tpl" }),
          "NOT_FOUND",
          /^name: no template named 'tpl'/,
        );
        await ask(client, c1, "tpl-1", "blk 0 verify 5 9", /OK blk verify/);

        // A clone's tap goes with it.
        await client.vm.kill.mutate({ id: "tpl-2" });
        await client.vm.delete.mutate({ id: "tpl-2" });
        assert.equal(
          existsSync(`/sys/class/net/${tapName(path.join(fx.runDir, "vms", "tpl-2"), 0)}`),
          false,
        );
        for (const console of consoles.values()) console.close();
        srcConsole.close();
      }),
  );
});
