// q35 VMs under virgad, end to end: real virgad, real virga-vmm, the probe
// guest on the PCIe board (docs/q35.md). A VM with a virtio-blk-pci disk on
// pcie.0 starts, its console shows the probe finding the disk by its ECAM
// scan, it survives virgad's kill -9 (re-attached, not restarted), and it
// stops; a misplaced device is refused naming the field, before any VM runs.
// A VM with a disk hot-plugged into a root port is snapshotted into a
// template, cloned and migrated locally, the disk in its port each time.
// Root ports and PCI devices of a stopped VM are edited in its config; the
// host's PCI functions are listed as sysfs has them, and a VFIO device is
// refused by the VMM by name (this host has no /dev/vfio).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { RootPort } from "../../src/config/vm-config";
import { makeDisk } from "../support/disk";
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

const TEST = { timeout: 90000 };
const MIB = 1024 * 1024;

/** Writes to a VM's serial console socket directly (while no virgad holds it). */
function typeOnConsole(socket: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const connection = createConnection(socket, () => {
      connection.end(text, () => {
        // The VMM reads it before the next client connects.
        setTimeout(resolve, 500);
      });
    });
    connection.on("error", reject);
  });
}

/** A root port on pcie.0, as VmConfig (and virga-vmm's -print-config) has it. */
function rootPort(id: string, port: number, addr: string, chassis?: number): RootPort {
  return {
    driver: "pcie-root-port",
    id,
    port,
    bus: "pcie.0",
    addr,
    ...(chassis === undefined ? {} : { chassis }),
  };
}

/** The probe on q35 with a 1 MiB disk at 00:03.0, after the given root ports. */
function q35Probe(fx: VirgadFixture, rootPorts: RootPort[] = []) {
  const file = makeDisk(fx.imagesDir, "boot.img");
  return {
    ...fx.probeConfig(),
    machine: "q35" as const,
    drives: [{ id: "boot", file, readOnly: false, direct: false }],
    devices: [
      ...rootPorts,
      {
        driver: "virtio-blk-pci" as const,
        id: "boot",
        drive: "boot",
        bus: "pcie.0",
        addr: "0x3.0",
      },
    ],
  };
}

/** A bridge for NICs on a tap virgad makes, deleted at the end. */
const testNet = testBridge("vgqbr");

describe("virgad q35 VMs", () => {
  before(() => {
    requireKvmHost();
    requireTaps();
    testNet.create();
  });

  after(() => {
    testNet.remove();
  });

  it(
    "starts a q35 VM with a disk on pcie.0, shows its console, re-attaches it after a virgad restart, stops it",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const first = await fx.start();
        const client = first.client();
        const created = await client.vm.create.mutate({ id: "pc", config: q35Probe(fx) });
        assert.equal(created.config.machine, "q35");
        const console = new ConsoleWatcher(client, "pc");
        const vm = await client.vm.start.mutate({ id: "pc" });
        fx.track(vm.pid);
        await console.waitFor(/PROBE virtio-blk 0 pci=00:03\.0 capacity=2048 ro=0/);
        await console.waitFor(/PROBE ready/);
        await client.vm.consoleInput.mutate({ id: "pc", data: "pci\n" });
        await console.waitFor(/OK pci \d+/);
        assert.match(console.text, /pci 00:00\.0 8086:29c0 060000/);
        assert.match(console.text, /pci 00:03\.0 1af4:1042 018000/);
        const stored = storedConfig(fx, "pc");
        assert.equal(stored.machine, "q35");
        assert.deepEqual(
          stored.devices.map((d) => ("bus" in d ? `${d.driver}@${d.bus}/${d.addr}` : d.driver)),
          ["virtio-blk-pci@pcie.0/0x3.0"],
        );

        await first.kill9();
        const second = await fx.start();
        const client2 = second.client();
        const again = await client2.vm.get.query({ id: "pc" });
        assert.equal(again.state, "running");
        assert.equal(again.pid, vm.pid, "re-attached, not restarted");
        const console2 = new ConsoleWatcher(client2, "pc");
        await console2.waitStarted();
        await client2.vm.consoleInput.mutate({ id: "pc", data: "count\n" });
        await console2.waitFor(/count \d+\n/);
        console2.close();

        const quit = await client2.vm.quit.mutate({ id: "pc" });
        assert.equal(quit.state, "shutdown");
        console.close();
      }),
  );

  it(
    "boots a q35 VM whose disk is in a root port; the device panel shows the port holding it",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        const base = q35Probe(fx);
        const [boot] = base.devices;
        assert.ok(boot !== undefined);
        await client.vm.create.mutate({
          id: "ported",
          config: {
            ...base,
            devices: [rootPort("rp1", 1, "0x2.0", 1), { ...boot, bus: "rp1", addr: "0x0.0" }],
          },
        });
        const console = new ConsoleWatcher(client, "ported");
        const vm = await client.vm.start.mutate({ id: "ported" });
        fx.track(vm.pid);
        await console.waitFor(/PROBE virtio-blk 0 pci=01:00\.0 capacity=2048 ro=0/);
        const devices = await client.vm.devices.query({ id: "ported" });
        assert.equal(devices.live, true);
        assert.deepEqual(
          devices.rootPorts.map((p) => [p.id, p.device]),
          [["rp1", "boot"]],
        );
        await client.vm.quit.mutate({ id: "ported" });
        console.close();
      }),
  );

  it(
    "hot-plugs a disk into a root port of a running VM; its detach is pending until the guest powers the slot off, which a restarted virgad notices",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        await client.vm.create.mutate({
          id: "hot",
          config: q35Probe(fx, [rootPort("rp1", 1, "0x2.0", 1)]),
        });
        const console = new ConsoleWatcher(client, "hot");
        const vm = await client.vm.start.mutate({ id: "hot" });
        fx.track(vm.pid);
        await console.waitFor(/PROBE ready/);
        const image = await client.image.create.mutate({ name: "hot.img", sizeBytes: 4 * MIB });

        const added = await client.vm.attachPciDisk.mutate({ id: "hot", file: image.path });
        assert.deepEqual([added.bus, added.addr, added.detaching], ["rp1", "0x0.0", false]);
        // The probe is the guest's pciehp: it powers the slot, then the disk answers on bus 1.
        await client.vm.consoleInput.mutate({ id: "hot", data: "pci slot 00:02.0 on\n" });
        await console.waitFor(/OK pci slot/);
        await client.vm.consoleInput.mutate({ id: "hot", data: "pci\n" });
        await console.waitFor(/pci 01:00\.0 1af4:1042 018000/);
        assert.ok(
          storedConfig(fx, "hot").devices.some(
            (d) => d.id === added.id && "bus" in d && d.bus === "rp1",
          ),
          "config.json has the disk in rp1",
        );
        await refused(
          client.vm.attachPciDisk.mutate({ id: "hot", file: image.path, bus: "rp1" }),
          "BAD_REQUEST",
          new RegExp(`^bus: root port 'rp1' is occupied by '${added.id}'$`),
        );

        const pending = await client.vm.detachPci.mutate({ id: "hot", device: added.id });
        assert.equal(pending?.detaching, true);
        const listed = await client.vm.devices.query({ id: "hot" });
        assert.deepEqual(
          listed.pci.map((f) => [f.id, f.detaching]),
          [
            ["boot", false],
            [added.id, true],
          ],
        );
        await refused(
          client.vm.detachPci.mutate({ id: "hot", device: added.id }),
          "CONFLICT",
          /is being detached already; the guest has not let go of it yet/,
        );
        await refused(
          client.vm.attachPciDisk.mutate({ id: "hot", file: image.path, bus: "rp1" }),
          "BAD_REQUEST",
          /occupied by .* \(being detached: the guest has not let go\)$/,
        );

        // The guest lets go while no virgad listens: the next one finishes the unplug.
        console.close();
        await virgad.kill9();
        await typeOnConsole(
          path.join(fx.runDir, "vms", "hot", "console.sock"),
          "pci slot 00:02.0 off\n",
        );
        const second = await fx.start();
        const client2 = second.client();
        await waitUntil(
          () => !storedConfig(fx, "hot").devices.some((d) => d.id === added.id),
          "the disk to leave config.json after DEVICE_DELETED",
        );
        const after = await client2.vm.devices.query({ id: "hot" });
        assert.deepEqual(
          after.rootPorts.map((p) => [p.id, p.device]),
          [["rp1", null]],
        );
        assert.deepEqual(
          storedConfig(fx, "hot").drives.map((d) => d.id),
          ["boot"],
        );
        const devices = await client2.vm.qmp.mutate({ id: "hot", execute: "virga-query-devices" });
        assert.equal(
          JSON.stringify(devices.return).includes(added.id),
          false,
          "the backend was deleted with the device",
        );
        await client2.vm.quit.mutate({ id: "hot" });
      }),
  );

  it("refuses a misplaced device or root port by its field, and creates nothing", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const client = virgad.client();
      const config = q35Probe(fx);
      const [boot] = config.devices;
      assert.ok(boot !== undefined);
      await refused(
        client.vm.create.mutate({
          id: "bad",
          config: { ...config, devices: [{ ...boot, bus: "rp1", addr: "0x0.0" }] },
        }),
        "BAD_REQUEST",
        /config\.devices\.0\.bus: unknown bus 'rp1'; expected pcie\.0 or a root port \(none declared\)/,
      );
      await refused(
        client.vm.create.mutate({
          id: "bad",
          config: { ...config, devices: [rootPort("rp1", 1, "0x3.0"), ...config.devices] },
        }),
        "BAD_REQUEST",
        /config\.devices\.1\.addr: pcie\.0 0x3\.0 is taken by 'rp1'/,
      );
      await refused(
        client.vm.create.mutate({
          id: "bad",
          config: {
            ...config,
            devices: [{ driver: "virtio-blk-device", id: "boot", drive: "boot" }],
          },
        }),
        "BAD_REQUEST",
        /config\.devices\.0\.driver: 'virtio-blk-device' is a microvm \(virtio-mmio\) device; the q35 machine takes virtio-blk-pci/,
      );
      assert.deepEqual(await client.vm.list.query(), []);
    }),
  );

  it(
    "snapshots, clones and migrates a q35 VM with a disk hot-plugged into a root port; each keeps it there",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        await client.vm.create.mutate({
          id: "src",
          config: q35Probe(fx, [rootPort("rp1", 1, "0x2.0", 1)]),
        });
        const console = new ConsoleWatcher(client, "src");
        fx.track((await client.vm.start.mutate({ id: "src" })).pid);
        await console.waitFor(/PROBE ready[\s\S]*probe> $/);
        const image = await client.image.create.mutate({ name: "hot.img", sizeBytes: 4 * MIB });
        const added = await client.vm.attachPciDisk.mutate({ id: "src", file: image.path });
        // The probe is the guest's pciehp: it powers the slot.
        await ask(client, console, "src", "pci slot 00:02.0 on", /OK pci slot/);
        await ask(client, console, "src", "blk 0 write 3 7", /OK blk write/);
        const inPort = (id: string) => async () => {
          const devices = await client.vm.devices.query({ id });
          assert.deepEqual(
            devices.rootPorts.map((p) => [p.id, p.device]),
            [["rp1", added.id]],
            id,
          );
        };

        await client.vm.snapshot.mutate({ id: "src", template: "ported" });
        assert.equal((await client.vm.get.query({ id: "src" })).state, "running");
        const report = await client.vm.clone.mutate({ template: "ported", count: 1 });
        for (const clone of report.clones) fx.track(clone.pid);
        const clone = report.clones[0];
        assert.ok(clone !== undefined && clone.error === null, JSON.stringify(report));
        assert.equal(clone.state, "running");
        await inPort(clone.id)();
        const cloneConsole = new ConsoleWatcher(client, clone.id);
        await cloneConsole.waitStarted();
        await ask(client, cloneConsole, clone.id, "blk 0 verify 3 7", /OK blk verify/);
        await ask(
          client,
          cloneConsole,
          clone.id,
          "pci",
          /pci 01:00\.0 1af4:1042 018000[\s\S]*OK pci/,
        );
        cloneConsole.close();

        const info = await client.vm.migrate.mutate({ id: "src", local: true, wait: true });
        assert.equal(info.status, "completed", JSON.stringify(info));
        const moved = await client.vm.get.query({ id: "src" });
        fx.track(moved.pid);
        assert.equal(moved.state, "running");
        await inPort("src")();
        console.close();
        // The new process's console, from where the old one's ended.
        const there = new ConsoleWatcher(client, "src", console.lastId ?? undefined);
        await there.waitStarted();
        await ask(client, there, "src", "pci", /pci 01:00\.0 1af4:1042 018000[\s\S]*OK pci/);
        await ask(client, there, "src", "blk 0 verify 3 7", /OK blk verify/);
        there.close();
      }),
  );

  it(
    "edits a stopped q35 VM's root ports: a disk into a free one, a taken or missing one refused, a NIC on a tap it makes on a bridge, each detached",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        const config = q35Probe(fx, [
          rootPort("rp1", 1, "0x2.0", 1),
          rootPort("rp2", 2, "0x2.1", 2),
        ]);
        await client.vm.create.mutate({ id: "cold", config });
        const before = await client.vm.devices.query({ id: "cold" });
        assert.equal(before.machine, "q35");
        assert.deepEqual(before.disks, []);
        assert.deepEqual(
          before.rootPorts.map((p) => [p.id, p.device]),
          [
            ["rp1", null],
            ["rp2", null],
          ],
        );
        assert.deepEqual(
          before.pci.map((f) => [f.id, f.bus, f.addr, f.sizeBytes]),
          [["boot", "pcie.0", "0x3.0", 1024 * 1024]],
        );

        const data = makeDisk(fx.imagesDir, "data.img", 2 * 1024 * 1024);
        const added = await client.vm.attachPciDisk.mutate({ id: "cold", file: data });
        assert.equal(added.bus, "rp1", "the first free root port");
        assert.equal(added.addr, "0x0.0");
        assert.equal(added.driver, "virtio-blk-pci");
        assert.equal(added.detaching, false);
        const stored = storedConfig(fx, "cold");
        assert.ok(
          stored.devices.some((d) => "bus" in d && d.bus === "rp1" && d.id === added.id),
          JSON.stringify(stored.devices),
        );
        assert.ok(stored.drives.some((d) => d.id === added.id && d.file === added.file));

        await refused(
          client.vm.attachPciDisk.mutate({ id: "cold", file: data, bus: "rp1" }),
          "BAD_REQUEST",
          new RegExp(`^bus: root port 'rp1' is occupied by '${added.id}'$`),
        );
        await refused(
          client.vm.attachPciDisk.mutate({ id: "cold", file: data, bus: "pcie.0" }),
          "BAD_REQUEST",
          /^bus: pcie\.0 has no hot-plug controller; give a root port \(rp1, rp2\)$/,
        );
        await refused(
          client.vm.attachPciDisk.mutate({ id: "cold", file: data, bus: "rp9" }),
          "BAD_REQUEST",
          /^bus: 'rp9' is not a root port of VM 'cold' \(root ports: rp1, rp2\)$/,
        );
        await refused(
          client.vm.attachDisk.mutate({ id: "cold", file: data }),
          "BAD_REQUEST",
          /^slot: VM 'cold' is a q35 VM, which has root ports, not slots/,
        );
        await refused(
          client.vm.detachPci.mutate({ id: "cold", device: "nope" }),
          "NOT_FOUND",
          /^device: VM 'cold' has no PCI device 'nope'$/,
        );

        assert.equal(await client.vm.detachPci.mutate({ id: "cold", device: added.id }), null);

        const nic = await client.vm.attachPciNic.mutate({
          id: "cold",
          bridge: testNet.name,
          mac: "52:54:00:00:35:01",
        });
        assert.deepEqual(
          [nic.driver, nic.bus, nic.bridge, nic.mac],
          ["virtio-net-pci", "rp1", testNet.name, "52:54:00:00:35:01"],
        );
        assert.ok(nic.ifname !== null && existsSync(`/sys/class/net/${nic.ifname}`), "the tap");
        assert.equal(await client.vm.detachPci.mutate({ id: "cold", device: nic.id }), null);
        assert.equal(existsSync(`/sys/class/net/${nic.ifname}`), false, "the tap went with it");
        const after = await client.vm.devices.query({ id: "cold" });
        assert.deepEqual(
          after.rootPorts.map((p) => p.device),
          [null, null],
        );
        assert.deepEqual(storedConfig(fx, "cold").devices, config.devices);
      }),
  );

  it(
    "lists the host's PCI functions as sysfs has them; a VFIO device is refused by the VMM by name",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        const host = await client.host.pciDevices.query();
        const sysfs = "/sys/bus/pci/devices";
        const addresses = readdirSync(sysfs).sort();
        assert.ok(addresses.length > 0, "this host has PCI functions");
        assert.deepEqual(
          host.devices.map((d) => d.address),
          addresses,
        );
        for (const device of host.devices) {
          const read = (name: string) =>
            readFileSync(`${sysfs}/${device.address}/${name}`, "utf8").trim();
          assert.equal(`0x${device.vendor}`, read("vendor"));
          assert.equal(`0x${device.device}`, read("device"));
          assert.equal(`0x${device.class}`, read("class"));
        }
        assert.equal(host.vfio, false, "this host has no /dev/vfio (GUESTS.md)");

        const [first] = addresses;
        assert.ok(first !== undefined);
        await refused(
          client.vm.attachVfio.mutate({ id: "none", host: first }),
          "NOT_FOUND",
          /no VM with id 'none'/,
        );
        const config = q35Probe(fx, [rootPort("rp1", 1, "0x2.0")]);
        await client.vm.create.mutate({ id: "pass", config });
        await refused(
          client.vm.attachVfio.mutate({ id: "pass", host: "0000:7f:1f.7" }),
          "BAD_REQUEST",
          /^host: this host has no PCI device 0000:7f:1f\.7/,
        );
        const vfio = await client.vm.attachVfio.mutate({ id: "pass", host: first });
        assert.deepEqual([vfio.driver, vfio.host, vfio.bus], ["vfio-pci", first, "rp1"]);
        assert.deepEqual(storedConfig(fx, "pass").devices.at(-1), {
          driver: "vfio-pci",
          id: vfio.id,
          host: first,
          bus: "rp1",
          addr: "0x0.0",
        });

        // Cold-plugged on pcie.0: the VMM, not virgad, says why it cannot pass it through.
        const cold = q35Probe(fx);
        await client.vm.create.mutate({
          id: "cold-vfio",
          config: {
            ...cold,
            devices: [
              ...cold.devices,
              { driver: "vfio-pci", id: "dev0", host: first, bus: "pcie.0", addr: "0x5.0" },
            ],
          },
        });
        await refused(
          client.vm.start.mutate({ id: "cold-vfio" }),
          "INTERNAL_SERVER_ERROR",
          /^VM 'cold-vfio' failed to start: .*vfio-pci/,
        );
        const vm = await client.vm.get.query({ id: "cold-vfio" });
        assert.notEqual(vm.state, "running");
        assert.match(vm.exit?.error ?? "", /vfio-pci/);

        // In a root port too: the VMM's reason, by name, not a refusal of the place.
        await refused(
          client.vm.start.mutate({ id: "pass" }),
          "INTERNAL_SERVER_ERROR",
          new RegExp(
            `^VM 'pass' failed to start: .*vfio-pci device ${vfio.id}: /dev/vfio/vfio \\(VFIO: load the vfio, vfio_pci and vfio_iommu_type1 modules\\)`,
          ),
        );

        // Hot-plugged into a running VM's root port: device_add reaches the
        // VMM, whose refusal comes back as it is; the VM runs on and its
        // config.json is as it was.
        await client.vm.create.mutate({
          id: "hot-vfio",
          config: q35Probe(fx, [rootPort("rp1", 1, "0x2.0")]),
        });
        const console = new ConsoleWatcher(client, "hot-vfio");
        const running = await client.vm.start.mutate({ id: "hot-vfio" });
        fx.track(running.pid);
        await console.waitFor(/PROBE ready/);
        const before = storedConfig(fx, "hot-vfio");
        await refused(
          client.vm.attachVfio.mutate({ id: "hot-vfio", host: first }),
          "BAD_REQUEST",
          /^vfio-pci device vfio-rp1: \/dev\/vfio\/vfio \(VFIO: load the vfio, vfio_pci and vfio_iommu_type1 modules\): No such file or directory$/,
        );
        assert.deepEqual(storedConfig(fx, "hot-vfio"), before);
        const listed = await client.vm.devices.query({ id: "hot-vfio" });
        assert.deepEqual(
          listed.rootPorts.map((p) => [p.id, p.device]),
          [["rp1", null]],
        );
        assert.equal((await client.vm.get.query({ id: "hot-vfio" })).state, "running");
        await client.vm.consoleInput.mutate({ id: "hot-vfio", data: "pci\n" });
        await console.waitFor(/OK pci \d+/);
        console.close();
      }),
  );
});
