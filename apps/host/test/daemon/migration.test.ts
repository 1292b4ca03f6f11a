// Live migration between two virgad instances on this machine (two run
// directories, two ports, one image directory standing for shared
// storage): a probe VM that keeps counting, with a disk and a NIC on a
// bridge, moves from one to the other and counts on there with its disk,
// its MAC and a tap of the destination's own; the source's record, process
// and tap are gone. Refusals name what is wrong and leave the source
// running; a cancel mid-way leaves the source running and no VM, process
// or tap at the destination.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { MigrationInfo } from "../../src/daemon/router";
import { tapName } from "../../src/daemon/taps";
import { requireKvmHost } from "../support/guest";
import { makeTap, requireTaps, testBridge } from "../support/tap";
import {
  alive,
  ConsoleWatcher,
  EventWatcher,
  lastCount,
  probeVmWithDisk,
  refused,
  sparseDisk,
  waitUntil,
  withVirgad,
  type VirgadFixture,
} from "./harness";

const TEST = { timeout: 120000 };
const MIB = 1024 * 1024;
const testNet = testBridge("vgmig");
const bridge = testNet.name;

/** Two virgads, A (the source) and B (the destination). */
async function twoHosts(fx: VirgadFixture) {
  const a = await fx.start(path.join(fx.tmp.dir, "run-a"));
  const b = await fx.start(path.join(fx.tmp.dir, "run-b"));
  return { a, b, ca: a.client(), cb: b.client(), dest: { url: b.url, token: b.token } };
}

describe("virgad live migration between two virgads", () => {
  before(() => {
    requireKvmHost();
    requireTaps();
    testNet.create();
  });

  after(() => {
    testNet.remove();
  });

  it("moves a counting probe VM to the other virgad, where it counts on", TEST, () =>
    withVirgad(async (fx) => {
      const { ca, cb, dest, b } = await twoHosts(fx);
      const disk = sparseDisk(fx, "shared.img", 4 * MIB);
      const { console, pid } = await probeVmWithDisk(fx, ca, "mover", disk, 128);
      const nic = await ca.vm.attachNic.mutate({ id: "mover", bridge, slot: 0 });
      const sourceTap = tapName(path.join(fx.tmp.dir, "run-a", "vms", "mover"), 0);
      const destTap = tapName(path.join(fx.tmp.dir, "run-b", "vms", "mover"), 0);
      assert.equal(nic.ifname, sourceTap);
      const events = new EventWatcher(ca, { id: "mover" });
      await events.waitStarted();
      await ca.vm.consoleInput.mutate({ id: "mover", data: "count\n" });
      await console.waitFor(/count 5\r?\n/);

      const info: MigrationInfo = await ca.vm.migrate.mutate({
        id: "mover",
        destination: dest,
        downtimeLimitMs: 100,
        wait: true,
      });
      assert.equal(info.status, "completed", JSON.stringify(info));
      assert.equal(info.error, null);
      assert.equal(info.destination, b.url);
      assert.ok(info.stats !== null && info.stats.totalBytes === 128 * MIB, JSON.stringify(info));
      assert.ok((info.stats.transferredBytes ?? 0) > 0);
      assert.ok(typeof info.stats.downtimeMs === "number" && info.stats.downtimeMs < 1000);
      assert.ok((info.stats.rounds ?? 0) >= 1);
      const countAtSource = lastCount(console.text);

      // The source let go: no record, no process.
      await refused(ca.vm.get.query({ id: "mover" }), "NOT_FOUND", /no VM with id 'mover'/);
      await waitUntil(() => pid === null || !alive(pid), "the source's virga-vmm to exit");
      await events.waitFor(
        (all) => all.some((e) => e.event === "VM_DELETED"),
        "VM_DELETED at the source",
      );
      const statuses = events.events
        .filter((e) => e.event === "VM_MIGRATION")
        .map((e) => (e.data as { status: string }).status);
      assert.equal(statuses[0], "setup");
      assert.equal(statuses.at(-1), "completed");
      const deleted = events.events.find((e) => e.event === "VM_DELETED");
      assert.deepEqual(deleted?.data, { migratedTo: b.url, migrationId: info.migrationId });
      assert.ok(!events.of("mover").includes("VM_STATE:shutdown"), events.of("mover").join());
      events.close();

      // The destination runs it, counting on from where it was.
      const moved = await cb.vm.get.query({ id: "mover" });
      fx.track(moved.pid);
      assert.equal(moved.state, "running");
      assert.equal(moved.migration, null);
      assert.equal(moved.config.incoming, undefined);
      // Its own tap on the same bridge, the MAC the guest read; the source's tap is gone.
      const nics = (await cb.vm.devices.query({ id: "mover" })).nics;
      assert.deepEqual(
        nics.filter((n) => n.device !== null).map((n) => [n.slot, n.ifname, n.bridge, n.mac]),
        [[0, destTap, bridge, nic.mac]],
      );
      assert.equal(path.basename(readlinkSync(`/sys/class/net/${destTap}/master`)), bridge);
      assert.equal(existsSync(`/sys/class/net/${sourceTap}`), false);
      assert.deepEqual(
        moved.config.drives.map((d) => d.file),
        [disk],
      );
      const there = new ConsoleWatcher(cb, "mover");
      await there.waitFor(new RegExp(`count ${countAtSource + 20}\\r?\\n`));
      await cb.vm.consoleInput.mutate({ id: "mover", data: "x" });
      await there.waitFor(/OK count/);
      const answer = there.text.length;
      await cb.vm.consoleInput.mutate({ id: "mover", data: "blk 0 info\n" });
      await waitUntil(
        () => /OK blk info capacity=8192/.test(there.text.slice(answer)),
        "the disk to answer at the destination",
      );
      const asked = there.text.length;
      await cb.vm.consoleInput.mutate({ id: "mover", data: "net 0 info\n" });
      await waitUntil(
        () => new RegExp(`OK net info mac=${nic.mac}`, "i").test(there.text.slice(asked)),
        "the NIC to answer at the destination with its MAC",
      );
      assert.deepEqual(
        (await ca.vm.migrations.query()).map((m) => [m.migrationId, m.status]),
        [[info.migrationId, "completed"]],
      );
      there.close();
      console.close();
    }),
  );

  it("refuses what cannot migrate, naming why, and the VM runs on", TEST, () =>
    withVirgad(async (fx) => {
      const { ca, cb, dest, a } = await twoHosts(fx);
      await refused(
        ca.vm.migrate.mutate({ id: "nope", destination: dest }),
        "NOT_FOUND",
        /no VM with id 'nope'/,
      );
      await ca.vm.create.mutate({ id: "idle", config: fx.probeConfig() });
      await refused(
        ca.vm.migrate.mutate({ id: "idle", destination: dest }),
        "PRECONDITION_FAILED",
        /cannot migrate VM 'idle': it is created \(needs running or paused\)/,
      );
      const disk = sparseDisk(fx, "r.img", MIB);
      await probeVmWithDisk(fx, ca, "stay", disk, 128);
      await refused(
        ca.vm.migrate.mutate({
          id: "stay",
          destination: { url: "http://127.0.0.1:1", token: "x" },
        }),
        "BAD_REQUEST",
        /^destination\.url: no virgad answers at http:\/\/127\.0\.0\.1:1/,
      );
      await refused(
        ca.vm.migrate.mutate({ id: "stay", destination: { ...dest, token: "wrong" } }),
        "BAD_REQUEST",
        /^destination\.token: the virgad at .* refused the token/,
      );
      await refused(
        ca.vm.migrate.mutate({ id: "stay", destination: { url: a.url, token: a.token } }),
        "BAD_REQUEST",
        /destination\.url: that is the source's own virgad/,
      );
      await refused(
        ca.vm.migrate.mutate({ id: "stay", destination: { url: "ftp://x", token: "t" } }),
        "BAD_REQUEST",
        /^destination\.url: an http:\/\/ or https:\/\/ URL/,
      );
      await refused(
        ca.vm.migrate.mutate({ id: "stay", destination: dest, downtimeLimitMs: 0 }),
        "BAD_REQUEST",
        /^downtimeLimitMs: must be 1\.\.2000000 ms/,
      );

      // A disk only the source can reach is not shared storage.
      const own = await ca.image.create.mutate({ name: "private.img", sizeBytes: MIB });
      await ca.vm.create.mutate({
        id: "private",
        config: {
          ...fx.probeConfig(),
          drives: [{ id: "d", file: own.path, readOnly: false, direct: false }],
          devices: [{ driver: "virtio-blk-device", id: "d", drive: "d" }],
        },
      });
      fx.track((await ca.vm.start.mutate({ id: "private" })).pid);
      await refused(
        ca.vm.migrate.mutate({ id: "private", destination: dest }),
        "FORBIDDEN",
        /disks\.0\.file: '.*private\.img'.*outside the image directories/,
      );

      // A NIC on a tap virgad did not make: the destination could not make one like it.
      const tap = makeTap("vgm");
      try {
        await ca.vm.attachNic.mutate({ id: "stay", tap: tap.name, slot: 1 });
        await refused(
          ca.vm.migrate.mutate({ id: "stay", destination: dest }),
          "PRECONDITION_FAILED",
          new RegExp(
            `VM 'stay': NIC slot 1 \\(eth1\\) is on tap '${tap.name}', which virgad did not make`,
          ),
        );
        await ca.vm.detachNic.mutate({ id: "stay", slot: 1 });
      } finally {
        tap.remove();
      }

      for (const id of ["stay", "private"]) {
        const vm = await ca.vm.get.query({ id });
        assert.equal(vm.state, "running");
        assert.equal(vm.migration, null);
      }
      assert.deepEqual(await cb.vm.list.query(), []);
    }),
  );

  it("cancels a migration mid-way: the source runs on, the destination keeps nothing", TEST, () =>
    withVirgad(async (fx) => {
      const { ca, cb, dest } = await twoHosts(fx);
      const disk = sparseDisk(fx, "c.img", MIB);
      const { console } = await probeVmWithDisk(fx, ca, "slow", disk, 128);
      // 48 MiB of written pages at 4 MiB/s: the bulk copy alone takes ~12 s.
      await ca.vm.consoleInput.mutate({ id: "slow", data: "mem dirty 48 20\n" });
      await console.waitFor(/dirty 5\r?\n/);
      const started = await ca.vm.migrate.mutate({
        id: "slow",
        destination: dest,
        maxBandwidth: 4 * MIB,
      });
      assert.equal(started.status, "setup");
      const incoming = await cb.vm.get.query({ id: "slow" });
      fx.track(incoming.pid);
      assert.equal(incoming.state, "incoming");
      assert.equal(incoming.migration?.role, "destination");
      assert.equal((await ca.vm.get.query({ id: "slow" })).migration?.role, "source");

      await refused(
        ca.vm.migrate.mutate({ id: "slow", destination: dest }),
        "PRECONDITION_FAILED",
        /VM 'slow' is being migrated \(migration mig-[0-9a-f]+\); wait for it to end or cancel it/,
      );
      await refused(
        ca.vm.attachDisk.mutate({ id: "slow", file: disk }),
        "PRECONDITION_FAILED",
        /is being migrated/,
      );
      const mid = await ca.vm.migration.query({ migrationId: started.migrationId });
      assert.ok(["setup", "active"].includes(mid.status), mid.status);

      const cancelled = await ca.vm.migrateCancel.mutate({ id: "slow" });
      assert.equal(cancelled.status, "cancelled");
      assert.ok(cancelled.error !== null);
      assert.ok(cancelled.finishedAt !== null);

      const source = await ca.vm.get.query({ id: "slow" });
      assert.equal(source.state, "running");
      assert.equal(source.migration, null);
      const from = console.text.length;
      await ca.vm.consoleInput.mutate({ id: "slow", data: "x" });
      await waitUntil(
        () => /OK mem dirty/.test(console.text.slice(from)),
        "the source's guest to answer",
      );
      await ca.vm.consoleInput.mutate({ id: "slow", data: "mem check\n" });
      await console.waitFor(/OK mem check/);

      await waitUntil(
        () => incoming.pid === null || !alive(incoming.pid),
        "the destination's virga-vmm to end",
      );
      for (let i = 0; i < 100 && (await cb.vm.list.query()).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(await cb.vm.list.query(), []);
      await refused(
        ca.vm.migrateCancel.mutate({ id: "slow" }),
        "PRECONDITION_FAILED",
        /VM 'slow' is not being migrated/,
      );
      console.close();
    }),
  );

  it(
    "a destination killed mid-way fails the migration; the source runs on and says why",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const { ca, cb, dest } = await twoHosts(fx);
        const disk = sparseDisk(fx, "k.img", MIB);
        const { console } = await probeVmWithDisk(fx, ca, "cut", disk, 128);
        await ca.vm.consoleInput.mutate({ id: "cut", data: "mem dirty 48 20\n" });
        await console.waitFor(/dirty 5\r?\n/);
        const events = new EventWatcher(ca, { id: "cut" });
        await events.waitStarted();
        const started = await ca.vm.migrate.mutate({
          id: "cut",
          destination: dest,
          maxBandwidth: 4 * MIB,
        });
        const incoming = await cb.vm.get.query({ id: "cut" });
        fx.track(incoming.pid);
        await waitUntil(
          () =>
            events.events.some(
              (e) =>
                e.event === "VM_MIGRATION" && (e.data as { status: string }).status === "active",
            ),
          "the migration to be active",
        );
        assert.ok(incoming.pid !== null);
        process.kill(incoming.pid, "SIGKILL");

        await events.waitFor(
          (all) =>
            all.some(
              (e) =>
                e.event === "VM_MIGRATION" && (e.data as { status: string }).status === "failed",
            ),
          "VM_MIGRATION failed at the source",
        );
        const failed = await ca.vm.migration.query({ migrationId: started.migrationId });
        assert.equal(failed.status, "failed");
        assert.ok(failed.error !== null && failed.error.length > 0, JSON.stringify(failed));
        const source = await ca.vm.get.query({ id: "cut" });
        assert.equal(source.state, "running");
        assert.equal(source.migration, null);
        const from = console.text.length;
        await ca.vm.consoleInput.mutate({ id: "cut", data: "x" });
        await waitUntil(
          () => /OK mem dirty/.test(console.text.slice(from)),
          "the source's guest to answer",
        );
        await ca.vm.consoleInput.mutate({ id: "cut", data: "mem check\n" });
        await console.waitFor(/OK mem check/);
        await waitUntil(() => !alive(incoming.pid ?? 0), "the destination's virga-vmm to be gone");
        for (let i = 0; i < 100 && (await cb.vm.list.query()).length > 0; i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.deepEqual(await cb.vm.list.query(), []);
        events.close();
        console.close();
      }),
  );

  it("reaches a destination beyond loopback only through its pinned certificate", TEST, () =>
    withVirgad(async (fx) => {
      const a = await fx.start(path.join(fx.tmp.dir, "run-a"));
      const b = await fx.start(path.join(fx.tmp.dir, "run-b"), "0.0.0.0:0");
      assert.equal(b.scheme, "https");
      const ca = a.client();
      const started = await ca.vm.create.mutate({ id: "far", config: fx.probeConfig() });
      fx.track((await ca.vm.start.mutate({ id: started.id })).pid);
      const cert = readFileSync(path.join(fx.tmp.dir, "run-b", "tls", "cert.pem"), "utf8");
      const fingerprint = new X509Certificate(cert).fingerprint256;
      const destination = { url: b.url, token: b.token };

      await refused(
        ca.vm.migrate.mutate({ id: "far", destination }),
        "BAD_REQUEST",
        /destination\.pin: required for an https:\/\/ destination/,
      );
      const wrong = fingerprint.replace(/^../, fingerprint.startsWith("00") ? "11" : "00");
      await refused(
        ca.vm.migrate.mutate({
          id: "far",
          destination: { ...destination, pin: { fingerprint: wrong, cert } },
        }),
        "BAD_REQUEST",
        new RegExp(
          `destination\\.url: .*certificate \\(SHA-256 ${fingerprint}\\) is not the pinned one`,
        ),
      );
      assert.equal((await ca.vm.get.query({ id: "far" })).state, "running", "the source runs on");

      const info = await ca.vm.migrate.mutate({
        id: "far",
        destination: { ...destination, pin: { fingerprint, cert } },
        wait: true,
      });
      assert.equal(info.status, "completed", JSON.stringify(info));
      await refused(ca.vm.get.query({ id: "far" }), "NOT_FOUND", /no VM with id 'far'/);
      assert.ok(existsSync(path.join(fx.tmp.dir, "run-b", "vms", "far", "config.json")));
      const pidFile = path.join(fx.tmp.dir, "run-b", "vms", "far", "pid");
      fx.track(Number(readFileSync(pidFile, "utf8").trim()));
    }),
  );
});
