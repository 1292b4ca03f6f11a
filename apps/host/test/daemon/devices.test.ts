// virgad's device procedures end to end: real virgad, real virga-vmm, probe
// guests. A blank image made by virgad is hot-plugged into a running VM,
// shows in virga-query-devices and config.json, is still in its slot after
// a restart (the guest lists it at boot), and is detached; a NIC on a tap
// virgad makes on a bridge comes and goes with its tap; every refusal names
// the field and leaves nothing behind.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { tapName } from "../../src/daemon/taps";
import type { DevicesInfo } from "../../src/vmm/device-types";
import { requireKvmHost } from "../support/guest";
import { ip, requireTaps, testBridge } from "../support/tap";
import {
  ConsoleWatcher,
  refused,
  storedConfig,
  withVirgad,
  type VirgadFixture,
  type VirgadProcess,
} from "./harness";

const TEST = { timeout: 90000 };
const MIB = 1024 * 1024;
const BALLOON = {
  driver: "virtio-balloon-device" as const,
  id: "balloon0",
  deflateOnOom: true,
  freePageReporting: false,
};

/** A bridge for the test run, deleted at the end. */
const testNet = testBridge("vgtbr");
const bridge = testNet.name;

async function running(
  virgad: VirgadProcess,
  fx: VirgadFixture,
  id: string,
  config: ReturnType<VirgadFixture["probeConfig"]>,
) {
  const client = virgad.client();
  await client.vm.create.mutate({ id, config });
  const console = new ConsoleWatcher(client, id);
  const vm = await client.vm.start.mutate({ id });
  fx.track(vm.pid);
  await console.waitFor(/PROBE ready/);
  return { client, console };
}

async function queryDevices(client: ReturnType<VirgadProcess["client"]>, id: string) {
  const reply = await client.vm.qmp.mutate({ id, execute: "virga-query-devices" });
  assert.equal(reply.error, undefined, JSON.stringify(reply.error));
  return reply.return as DevicesInfo;
}

describe("virgad devices", () => {
  before(() => {
    requireKvmHost();
    requireTaps();
    testNet.create();
  });

  after(() => {
    testNet.remove();
  });

  it(
    "creates a blank image, hot-plugs it, keeps it in its slot across a restart, detaches it",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const { client, console } = await running(virgad, fx, "disky", fx.probeConfig());

        const image = await client.image.create.mutate({ name: "data.img", sizeBytes: 4 * MIB });
        const imagesDir = realpathSync(path.join(fx.runDir, "images"));
        assert.equal(image.path, path.join(imagesDir, "data.img"));
        assert.equal(image.sizeBytes, 4 * MIB);
        assert.ok(image.allocatedBytes < MIB, `sparse (${image.allocatedBytes} bytes allocated)`);

        const slot = await client.vm.attachDisk.mutate({ id: "disky", file: image.path, slot: 2 });
        assert.deepEqual(slot, {
          slot: 2,
          guestName: "vdc",
          device: "disk2",
          file: image.path,
          readOnly: false,
          direct: false,
          sizeBytes: 4 * MIB,
        });
        const live = await queryDevices(client, "disky");
        assert.equal(live.block[2]?.file, image.path);
        assert.equal(live.block[2].size, 4 * MIB);
        assert.deepEqual(live.backends.block, [], "the backend is attached, none left over");
        const stored = storedConfig(fx, "disky");
        assert.deepEqual(stored.drives, [
          { id: "disk2", file: image.path, readOnly: false, direct: false },
        ]);
        assert.deepEqual(stored.devices, [
          { driver: "virtio-blk-device", id: "disk2", drive: "disk2", slot: 2 },
        ]);
        const listed = await client.image.list.query();
        assert.deepEqual(listed.find((i) => i.name === "data.img")?.usedBy, ["disky"]);

        await client.vm.quit.mutate({ id: "disky" });
        const restarted = await client.vm.start.mutate({ id: "disky" });
        fx.track(restarted.pid);
        await console.waitFor(/PROBE ready[\s\S]*PROBE ready/);
        const afterBoot = console.text.slice(console.text.lastIndexOf("PROBE boot"));
        assert.match(afterBoot, /PROBE virtio-blk 2 base=0xd0002000 irq=18 capacity=8192 ro=0/);
        assert.equal((await queryDevices(client, "disky")).block[2]?.device, "disk2");
        const devices = await client.vm.devices.query({ id: "disky" });
        assert.equal(devices.live, true);
        assert.equal(devices.disks[2]?.file, image.path);
        assert.equal(devices.disks.length, 6);
        assert.equal(devices.nics.length, 2);

        const emptied = await client.vm.detachDisk.mutate({ id: "disky", slot: 2 });
        assert.equal(emptied.device, null);
        assert.equal(emptied.sizeBytes, null);
        assert.equal((await queryDevices(client, "disky")).block[2]?.device, null);
        assert.deepEqual(storedConfig(fx, "disky").drives, []);
        assert.deepEqual(storedConfig(fx, "disky").devices, []);
      }),
  );

  it("edits a stopped VM's config: the disk is there at boot, read-only", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const client = virgad.client();
      await client.vm.create.mutate({ id: "cold", config: fx.probeConfig() });
      const image = await client.image.create.mutate({ name: "cold.img", sizeBytes: 2 * MIB });
      const slot = await client.vm.attachDisk.mutate({
        id: "cold",
        file: image.path,
        readOnly: true,
      });
      assert.equal(slot.slot, 0, "the first free slot");
      assert.equal(slot.readOnly, true);
      const offline = await client.vm.devices.query({ id: "cold" });
      assert.equal(offline.live, false);
      assert.equal(offline.disks[0]?.sizeBytes, 2 * MIB);
      const console = new ConsoleWatcher(client, "cold");
      const vm = await client.vm.start.mutate({ id: "cold" });
      fx.track(vm.pid);
      await console.waitFor(/PROBE ready/);
      assert.match(console.text, /PROBE virtio-blk 0 base=0xd0000000 irq=16 capacity=4096 ro=1/);
      await client.vm.quit.mutate({ id: "cold" });
      await client.vm.detachDisk.mutate({ id: "cold", slot: 0 });
      assert.deepEqual(storedConfig(fx, "cold").drives, []);
    }),
  );

  it(
    "attaches a NIC on a tap it makes on a bridge, keeps it across a restart, deletes the tap on detach and with the VM",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const { client, console } = await running(virgad, fx, "netty", fx.probeConfig());
        const nic = await client.vm.attachNic.mutate({ id: "netty", bridge });
        assert.equal(nic.slot, 0);
        assert.equal(nic.bridge, bridge);
        assert.match(nic.ifname ?? "", /^vg[0-9a-f]{8}n0$/);
        const tap = nic.ifname ?? "";
        assert.equal(path.basename(realpathSync(`/sys/class/net/${tap}/master`)), bridge);
        const live = await queryDevices(client, "netty");
        assert.equal(live.net[0]?.ifname, tap);
        assert.equal(live.net[0].link, "up");
        assert.equal(nic.mac, live.net[0].mac);
        const stored = storedConfig(fx, "netty");
        assert.deepEqual(stored.netdevs, [{ id: "net0", ifname: tap }]);
        assert.deepEqual(stored.devices, [
          { driver: "virtio-net-device", id: "net0", netdev: "net0", slot: 0, mac: nic.mac },
        ]);

        await client.vm.quit.mutate({ id: "netty" });
        assert.ok(existsSync(`/sys/class/net/${tap}`), "the tap outlives the VM process");
        // As after a host reboot: the tap is gone and the next start makes it again.
        ip(["link", "del", tap]);
        const again = await client.vm.start.mutate({ id: "netty" });
        fx.track(again.pid);
        await console.waitFor(/PROBE ready[\s\S]*PROBE ready/);
        const back = await queryDevices(client, "netty");
        assert.equal(back.net[0]?.ifname, tap);
        assert.equal(back.net[0].mac, nic.mac, "the same MAC after the restart");
        assert.equal(path.basename(realpathSync(`/sys/class/net/${tap}/master`)), bridge);

        const freed = await client.vm.detachNic.mutate({ id: "netty", slot: 0 });
        assert.equal(freed.device, null);
        assert.equal(freed.link, "down");
        assert.equal(existsSync(`/sys/class/net/${tap}`), false, "the tap is deleted");
        assert.deepEqual(storedConfig(fx, "netty").netdevs, []);

        // Attached while stopped, deleted with the VM.
        await client.vm.quit.mutate({ id: "netty" });
        const cold = await client.vm.attachNic.mutate({ id: "netty", bridge, slot: 1 });
        assert.ok(existsSync(`/sys/class/net/${cold.ifname ?? ""}`));
        assert.equal(cold.link, null);
        await client.vm.delete.mutate({ id: "netty" });
        assert.equal(existsSync(`/sys/class/net/${cold.ifname ?? ""}`), false);
      }),
  );

  it("names every refused disk request and leaves the VM and its config as they were", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const { client, console } = await running(virgad, fx, "picky", fx.probeConfig());
      const image = await client.image.create.mutate({ name: "a.img", sizeBytes: MIB });
      await client.vm.attachDisk.mutate({ id: "picky", file: image.path, slot: 1 });
      const before = storedConfig(fx, "picky");

      // The VM refuses the occupied slot after blockdev-add: the backend is removed again.
      const other = await client.image.create.mutate({ name: "b.img", sizeBytes: MIB });
      await refused(
        client.vm.attachDisk.mutate({ id: "picky", file: other.path, slot: 1 }),
        "BAD_REQUEST",
        /^addr: block slot 0x1 \(vdb\) is occupied by 'disk1'$/,
      );
      assert.deepEqual((await queryDevices(client, "picky")).backends.block, []);
      await refused(
        client.vm.attachDisk.mutate({ id: "picky", file: "/etc/passwd" }),
        "FORBIDDEN",
        /^file: '\/etc\/passwd' is outside the image directories/,
      );
      await refused(
        client.vm.attachDisk.mutate({ id: "picky", file: path.join(fx.imagesDir, "nope.img") }),
        "BAD_REQUEST",
        /^file: '.*nope\.img' does not exist$/,
      );
      const dir = path.join(fx.imagesDir, "folder");
      mkdirSync(dir);
      await refused(
        client.vm.attachDisk.mutate({ id: "picky", file: dir }),
        "BAD_REQUEST",
        /^file: '.*folder' is not a regular file or block device$/,
      );
      await refused(
        client.vm.attachDisk.mutate({ id: "picky", file: other.path, slot: 6 }),
        "BAD_REQUEST",
        /slot.*must be 0\.\.5/,
      );
      await refused(
        client.vm.detachDisk.mutate({ id: "picky", slot: 3 }),
        "BAD_REQUEST",
        /^slot: disk slot 3 \(vdd\) is empty$/,
      );
      await refused(
        client.vm.attachDisk.mutate({ id: "nobody", file: other.path }),
        "NOT_FOUND",
        /^no VM with id 'nobody'$/,
      );
      assert.deepEqual(storedConfig(fx, "picky"), before);
      const blocks = (await queryDevices(client, "picky")).block.map((s) => s.device);
      assert.deepEqual(blocks, [null, "disk1", null, null, null, null]);

      // Images: a name, never a path; nothing overwritten; sizes 1 MiB..2 TiB in sectors.
      await refused(
        client.image.create.mutate({ name: "a.img", sizeBytes: MIB }),
        "CONFLICT",
        /^name: 'a\.img' exists already in /,
      );
      await refused(
        client.image.create.mutate({ name: "../escape.img", sizeBytes: MIB }),
        "BAD_REQUEST",
        /^name: '\.\.\/escape\.img' must be a file name/,
      );
      await refused(
        client.image.create.mutate({ name: "tiny.img", sizeBytes: 4096 }),
        "BAD_REQUEST",
        /^sizeBytes: 4096 is out of range; expected 1 MiB/,
      );
      await refused(
        client.image.create.mutate({ name: "huge.img", sizeBytes: 3 * 1024 * 1024 * MIB }),
        "BAD_REQUEST",
        /^sizeBytes: \d+ is out of range/,
      );
      await refused(
        client.image.create.mutate({ name: "odd.img", sizeBytes: MIB + 1 }),
        "BAD_REQUEST",
        /^sizeBytes: 1048577 is not a multiple of 512/,
      );
      await refused(
        client.image.create.mutate({ name: "x.img", sizeBytes: MIB, dir: "/tmp" }),
        "BAD_REQUEST",
        /^dir: '\/tmp' is not an image directory/,
      );
      assert.equal(existsSync(path.join(fx.imagesDir, "..", "escape.img")), false);

      await client.vm.consoleInput.mutate({ id: "picky", data: "help\n" });
      await console.waitFor(/OK help/);
    }),
  );

  it("names every refused NIC request and leaves no tap or backend behind", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const { client, console } = await running(virgad, fx, "nicky", fx.probeConfig());
      const before = storedConfig(fx, "nicky");
      const slot0 = (await queryDevices(client, "nicky")).net[0];
      assert.ok(slot0 !== undefined);
      const listedMac = (await client.vm.devices.query({ id: "nicky" })).nics[0]?.mac;
      assert.equal(listedMac, slot0.mac, "virgad lists the slot's MAC");

      await refused(
        client.vm.attachNic.mutate({ id: "nicky", bridge: "vgnosuchbr0" }),
        "BAD_REQUEST",
        /^bridge: bridge 'vgnosuchbr0' does not exist \(create it with: ip link add vgnosuchbr0 type bridge\)$/,
      );
      await refused(
        client.vm.attachNic.mutate({ id: "nicky", bridge: "lo" }),
        "BAD_REQUEST",
        /^bridge: 'lo' is a network interface but not a bridge$/,
      );
      // netdev_add succeeds, device_add refuses the MAC: the backend and the new tap go again.
      const wanted = "52:54:00:aa:bb:cc";
      await refused(
        client.vm.attachNic.mutate({ id: "nicky", bridge, mac: wanted }),
        "BAD_REQUEST",
        new RegExp(`^mac: NIC slot 0x0 has MAC ${slot0.mac} fixed at boot`),
      );
      const afterMac = await queryDevices(client, "nicky");
      assert.deepEqual(afterMac.backends.net, []);
      assert.equal(afterMac.net[0]?.device, null);
      const madeTap = tapName(path.join(fx.runDir, "vms", "nicky"), 0);
      assert.equal(existsSync(`/sys/class/net/${madeTap}`), false, `${madeTap} is deleted`);
      await refused(
        client.vm.attachNic.mutate({ id: "nicky", tap: "vgnosuchtap9" }),
        "BAD_REQUEST",
        /^ifname: tap 'vgnosuchtap9' does not exist/,
      );
      await refused(
        client.vm.attachNic.mutate({ id: "nicky", tap: "x", bridge }),
        "BAD_REQUEST",
        /give either tap .* or bridge/,
      );
      await refused(
        client.vm.attachNic.mutate({ id: "nicky", bridge, slot: 2 }),
        "BAD_REQUEST",
        /slot.*must be 0\.\.1/,
      );
      await refused(
        client.vm.detachNic.mutate({ id: "nicky", slot: 1 }),
        "BAD_REQUEST",
        /^slot: NIC slot 1 \(eth1\) is empty$/,
      );
      // Both slots taken, a third is refused before anything is made.
      await client.vm.attachNic.mutate({ id: "nicky", bridge });
      await client.vm.attachNic.mutate({ id: "nicky", bridge });
      await refused(
        client.vm.attachNic.mutate({ id: "nicky", bridge }),
        "BAD_REQUEST",
        /^slot: every NIC slot is occupied \(2 on the microvm\)$/,
      );
      await client.vm.detachNic.mutate({ id: "nicky", slot: 0 });
      await client.vm.detachNic.mutate({ id: "nicky", slot: 1 });
      assert.deepEqual(storedConfig(fx, "nicky"), before);

      await client.vm.consoleInput.mutate({ id: "nicky", data: "help\n" });
      await console.waitFor(/OK help/);
    }),
  );

  it(
    "sets the balloon target: the guest gives the memory back, reports its figures, and gets the target again after a restart",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const config = { ...fx.probeConfig({ memoryMiB: 128 }), devices: [BALLOON] };
        const { client, console } = await running(virgad, fx, "squeezed", config);
        const set = await client.vm.setBalloon.mutate({ id: "squeezed", bytes: 64 * MIB });
        assert.equal(set.targetBytes, 64 * MIB);
        assert.equal(set.memoryBytes, 128 * MIB);
        let balloon = set;
        for (let i = 0; i < 100 && balloon.actualBytes !== 64 * MIB; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          balloon = await client.vm.balloon.query({ id: "squeezed" });
        }
        assert.equal(balloon.actualBytes, 64 * MIB, "the guest reached the target");
        assert.ok((balloon.stats["stat-total-memory"] ?? 0) > 0, JSON.stringify(balloon.stats));
        assert.ok(balloon.statsUpdatedAt !== null);
        assert.equal(
          (await client.vm.devices.query({ id: "squeezed" })).balloonTargetBytes,
          64 * MIB,
        );

        await client.vm.quit.mutate({ id: "squeezed" });
        const again = await client.vm.start.mutate({ id: "squeezed" });
        fx.track(again.pid);
        await console.waitFor(/PROBE ready[\s\S]*PROBE ready/);
        for (let i = 0; i < 100 && balloon.targetBytes !== 64 * MIB; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          balloon = await client.vm.balloon.query({ id: "squeezed" }).catch(() => balloon);
        }
        assert.equal(balloon.targetBytes, 64 * MIB, "the recorded target is applied after a start");

        // Back to all of it: nothing is recorded any more.
        await client.vm.setBalloon.mutate({ id: "squeezed", bytes: 128 * MIB });
        assert.equal((await client.vm.devices.query({ id: "squeezed" })).balloonTargetBytes, null);
      }),
  );

  it("sets the balloon only where there is one, with the VM's own reason otherwise", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const client = virgad.client();
      await client.vm.create.mutate({ id: "plain", config: fx.probeConfig() });
      await refused(
        client.vm.setBalloon.mutate({ id: "plain", bytes: 32 * MIB }),
        "PRECONDITION_FAILED",
        /^cannot set the balloon of VM 'plain': it is created/,
      );
      const plain = await client.vm.start.mutate({ id: "plain" });
      fx.track(plain.pid);
      await refused(
        client.vm.setBalloon.mutate({ id: "plain", bytes: 32 * MIB }),
        "PRECONDITION_FAILED",
        /^VM 'plain' has no balloon/,
      );
      await refused(
        client.vm.balloon.query({ id: "plain" }),
        "PRECONDITION_FAILED",
        /^VM 'plain' has no balloon/,
      );

      // Before the guest runs, its driver cannot have taken the device: the VM says so.
      await client.vm.create.mutate({
        id: "ballooned",
        config: { ...fx.probeConfig(), devices: [BALLOON] },
      });
      const paused = await client.vm.start.mutate({ id: "ballooned", paused: true });
      fx.track(paused.pid);
      assert.equal(paused.state, "prelaunch");
      await refused(
        client.vm.setBalloon.mutate({ id: "ballooned", bytes: 32 * MIB }),
        "PRECONDITION_FAILED",
        /^No balloon device has been activated$/,
      );
      await refused(
        client.vm.setBalloon.mutate({ id: "ballooned", bytes: 0 }),
        "BAD_REQUEST",
        /bytes.*must be a positive number of bytes/,
      );
      const devices = await client.vm.devices.query({ id: "ballooned" });
      assert.deepEqual(devices.balloon, {
        device: "balloon0",
        deflateOnOom: true,
        freePageReporting: false,
        driverReady: false,
      });
      assert.equal(devices.balloonTargetBytes, null, "a refused target is not recorded");
    }),
  );
});
