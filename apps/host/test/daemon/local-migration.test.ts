// Live migration within one virgad (vm.migrate {local: true}): a counting
// probe VM moves to a new virga-vmm process on the same host and keeps its
// id, name, disk and bridge; its old process and tap are gone, it survives
// a virgad restart (re-attached to the new process) and boots normally
// after a quit. A clone, whose disk lives in its own directory, keeps that
// disk across the move. A cancel mid-way leaves the VM running in its old
// process and nothing else behind.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { derivedMac } from "../../src/daemon/devices";
import { tapName } from "../../src/daemon/taps";
import { requireKvmHost } from "../support/guest";
import { requireTaps, testBridge } from "../support/tap";
import {
  alive,
  ConsoleWatcher,
  EventWatcher,
  lastCount,
  probeVmWithDisk,
  refused,
  sparseDisk,
  storedConfig,
  waitUntil,
  withVirgad,
  type VirgadFixture,
  type VirgadProcess,
} from "./harness";

const TEST = { timeout: 120000 };
const MIB = 1024 * 1024;
const testNet = testBridge("vglmg");
const bridge = testNet.name;

type Client = ReturnType<VirgadProcess["client"]>;

/** Asks the probe guest something and waits for the answer after this point. */
async function ask(
  client: Client,
  id: string,
  console: ConsoleWatcher,
  line: string,
  answer: RegExp,
) {
  const from = console.text.length;
  await client.vm.consoleInput.mutate({ id, data: line });
  await waitUntil(() => answer.test(console.text.slice(from)), `'${line.trim()}' to answer`);
}

/** The VM directories of the run directory (a passing mig-… one must not stay). */
function vmDirs(fx: VirgadFixture): string[] {
  return readdirSync(path.join(fx.runDir, "vms")).sort();
}

describe("virgad local migration (a new process on the same host)", () => {
  before(() => {
    requireKvmHost();
    requireTaps();
    testNet.create();
  });

  after(() => {
    testNet.remove();
  });

  it("moves a counting VM to a new process: same id, disk and bridge, a new tap", TEST, () =>
    withVirgad(async (fx) => {
      let virgad = await fx.start();
      let client = virgad.client();
      const disk = sparseDisk(fx, "d.img", 4 * MIB);
      const { console, pid } = await probeVmWithDisk(fx, client, "mover", disk, 96);
      const nic = await client.vm.attachNic.mutate({ id: "mover", bridge, slot: 0 });
      const events = new EventWatcher(client, { id: "mover" });
      await events.waitStarted();
      await client.vm.consoleInput.mutate({ id: "mover", data: "count\n" });
      await console.waitFor(/count 5\r?\n/);

      await refused(
        client.vm.migrate.mutate({ id: "mover" }),
        "BAD_REQUEST",
        /^destination: required: another virgad's \{url, token\}, or local: true/,
      );
      await refused(
        client.vm.migrate.mutate({
          id: "mover",
          local: true,
          destination: { url: virgad.url, token: virgad.token },
        }),
        "BAD_REQUEST",
        /^local: not with a destination/,
      );

      const info = await client.vm.migrate.mutate({ id: "mover", local: true, wait: true });
      assert.equal(info.status, "completed", JSON.stringify(info));
      assert.equal(info.error, null);
      assert.equal(info.destination, "local");
      assert.equal(info.transport, "unix");
      assert.ok(info.stats !== null && info.stats.totalBytes === 96 * MIB, JSON.stringify(info));
      const countBefore = lastCount(console.text);

      // The same VM, in a new process; the old one is gone.
      const moved = await client.vm.get.query({ id: "mover" });
      fx.track(moved.pid);
      assert.equal(moved.state, "running");
      assert.equal(moved.migration, null);
      assert.equal(moved.name, "mover");
      assert.ok(moved.pid !== null && moved.pid !== pid, `pid ${moved.pid} vs ${pid}`);
      await waitUntil(() => pid === null || !alive(pid), "the old virga-vmm to exit");
      assert.deepEqual(
        (await client.vm.list.query()).map((vm) => vm.id),
        ["mover"],
      );
      assert.deepEqual(vmDirs(fx), ["mover"]);
      assert.ok(!events.of("mover").includes("VM_STATE:shutdown"), events.of("mover").join());
      assert.ok(!events.events.some((e) => e.event === "VM_DELETED"), "no VM_DELETED for it");

      // Its NIC: a tap of the new process's own on the same bridge, the MAC the guest read.
      const nics = (await client.vm.devices.query({ id: "mover" })).nics.filter(
        (n) => n.device !== null,
      );
      assert.equal(nics.length, 1);
      const own = nics.at(0);
      assert.ok(own !== undefined);
      assert.equal(own.bridge, bridge);
      assert.equal(own.mac, nic.mac);
      assert.notEqual(own.ifname, nic.ifname);
      assert.equal(existsSync(`/sys/class/net/${nic.ifname}`), false, "the old tap is gone");
      const tap = own.ifname ?? "";
      assert.equal(path.basename(readlinkSync(`/sys/class/net/${tap}/master`)), bridge);

      // The guest counts on, and its disk and NIC answer. Its console's history
      // goes on from the old process's: a client resuming where it was
      // misses nothing, and one from the start sees the boot.
      const resumed = new ConsoleWatcher(client, "mover", console.lastId ?? undefined);
      const there = new ConsoleWatcher(client, "mover");
      await waitUntil(
        () => lastCount(there.text) > countBefore + 10,
        `the count to go on past ${countBefore}`,
      );
      await ask(client, "mover", there, "x", /OK count/);
      assert.match(there.text, /probe> [\s\S]*count 1\r?\n/);
      assert.equal(resumed.firstOffset, Number(console.lastId));
      // It starts where the old process's output ended (a line may be cut in two).
      const first = /count (\d+)/.exec(resumed.text);
      assert.ok(first !== null && Number(first[1]) <= countBefore + 2, resumed.text.slice(0, 200));
      resumed.close();
      await ask(client, "mover", there, "blk 0 info\n", /OK blk info capacity=8192/);
      await ask(
        client,
        "mover",
        there,
        "net 0 info\n",
        new RegExp(`OK net info mac=${nic.mac}`, "i"),
      );

      assert.deepEqual(
        (await client.vm.migrations.query()).map((m) => [m.migrationId, m.status]),
        [[info.migrationId, "completed"]],
      );

      // virgad restarts: it re-attaches to the new process.
      there.close();
      console.close();
      events.close();
      await virgad.stop();
      virgad = await fx.start();
      client = virgad.client();
      const after = await client.vm.get.query({ id: "mover" });
      assert.equal(after.pid, moved.pid);
      assert.equal(after.state, "running");
      const again = new ConsoleWatcher(client, "mover");
      await ask(client, "mover", again, "blk 0 info\n", /OK blk info capacity=8192/);

      // Quit and start: it boots like any VM (no incoming left in its config).
      await client.vm.quit.mutate({ id: "mover" });
      assert.equal(storedConfig(fx, "mover").incoming, undefined);
      const restarted = await client.vm.start.mutate({ id: "mover" });
      fx.track(restarted.pid);
      await again.waitFor(/probe> /);
      again.close();
    }),
  );

  it(
    "keeps a clone's own disk, which lives in its directory, and its MAC with its guest's",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const client = (await fx.start()).client();
        const disk = sparseDisk(fx, "t.img", 2 * MIB);
        const { console } = await probeVmWithDisk(fx, client, "src", disk, 96);
        console.close();
        const nic = await client.vm.attachNic.mutate({ id: "src", bridge, slot: 0 });
        await client.vm.snapshot.mutate({ id: "src", template: "tpl" });
        const report = await client.vm.clone.mutate({ template: "tpl", count: 1 });
        for (const clone of report.clones) fx.track(clone.pid);
        const clone = report.clones[0];
        assert.ok(clone !== undefined && clone.error === null, JSON.stringify(report));
        const own = storedConfig(fx, clone.id).drives[0]?.file ?? "";
        assert.ok(own.startsWith(path.join(fx.runDir, "vms", clone.id) + path.sep), own);

        const info = await client.vm.migrate.mutate({ id: clone.id, local: true, wait: true });
        assert.equal(info.status, "completed", JSON.stringify(info));
        const moved = await client.vm.get.query({ id: clone.id });
        fx.track(moved.pid);
        assert.equal(moved.clonedFrom, "tpl");
        assert.deepEqual(
          moved.config.drives.map((d) => d.file),
          [own],
        );
        assert.ok(existsSync(own), "the clone's disk is there");
        // The new process translates as the old one did.
        const moved0 = (await client.vm.devices.query({ id: clone.id })).nics[0];
        assert.equal(moved0?.mac, derivedMac(clone.id, 0));
        assert.equal(moved0.guestMac, nic.mac);
        const there = new ConsoleWatcher(client, clone.id);
        await ask(client, clone.id, there, "blk 0 info\n", /OK blk info capacity=4096/);
        there.close();
      }),
  );

  it("cancels mid-way: the VM runs on in its old process, nothing else is left", TEST, () =>
    withVirgad(async (fx) => {
      const client = (await fx.start()).client();
      const disk = sparseDisk(fx, "c.img", MIB);
      const { console, pid } = await probeVmWithDisk(fx, client, "slow", disk, 96);
      await client.vm.attachNic.mutate({ id: "slow", bridge, slot: 0 });
      // 48 MiB of written pages at 4 MiB/s: the bulk copy alone takes ~12 s.
      await client.vm.consoleInput.mutate({ id: "slow", data: "mem dirty 48 20\n" });
      await console.waitFor(/dirty 5\r?\n/);
      const started = await client.vm.migrate.mutate({
        id: "slow",
        local: true,
        maxBandwidth: 4 * MIB,
      });
      assert.equal(started.status, "setup");
      // The receiving process is a VM of its own meanwhile, marked as the destination.
      const receiving = (await client.vm.list.query()).filter((vm) => vm.id !== "slow");
      assert.equal(receiving.length, 1);
      const incoming = receiving.at(0);
      assert.ok(incoming !== undefined);
      fx.track(incoming.pid);
      assert.equal(incoming.state, "incoming");
      assert.equal(incoming.migration?.role, "destination");
      assert.match(incoming.id, /^mig-[0-9a-f]{10}$/);

      const cancelled = await client.vm.migrateCancel.mutate({ id: "slow" });
      assert.equal(cancelled.status, "cancelled");
      const source = await client.vm.get.query({ id: "slow" });
      assert.equal(source.state, "running");
      assert.equal(source.pid, pid);
      assert.equal(source.migration, null);
      await ask(client, "slow", console, "x", /OK mem dirty/);
      for (let i = 0; i < 100 && (await client.vm.list.query()).length > 1; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(
        (await client.vm.list.query()).map((vm) => vm.id),
        ["slow"],
      );
      await waitUntil(() => !alive(incoming.pid ?? 0), "the receiving virga-vmm to be gone");
      assert.deepEqual(vmDirs(fx), ["slow"]);
      const taps = readdirSync("/sys/class/net").filter((name) =>
        name.startsWith(tapName(path.join(fx.runDir, "vms", incoming.id), 0).slice(0, 10)),
      );
      assert.deepEqual(taps, [], "no tap of the receiving VM is left");
      console.close();
    }),
  );
});
