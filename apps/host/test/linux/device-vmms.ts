// How each VMM is asked for the device scenarios (device-scenarios.ts):
// virga-vmm with its flags and the QMP of docs/devices.md, and Debian's QEMU
// as a reference that proves the scenarios and the harness (QEMU's microvm
// has no hot-plug, so the reference is q35 with PCIe root ports).
import assert from "node:assert/strict";
import { linuxKernelArgs } from "./guest-images";
import type { QmpClient } from "../../src/qmp/client";
import { vmmBin } from "../support/paths";

export interface BootOptions {
  memMiB: number;
  qmpSocket: string;
  /** Raw images present from boot, in slot order (vda, vdb, ...). */
  disks?: { file: string; id: string; readOnly?: boolean }[];
  balloon?: boolean;
}

/** What a block device looks like to virga-vmm's own query, for the checks below. */
interface VirgaBlockSlot {
  slot: number;
  "guest-name": string;
  device: string | null;
  "node-name": string | null;
  file: string | null;
  size: number;
}
interface VirgaNetSlot {
  "guest-name": string;
  device: string | null;
  ifname: string | null;
  mac: string;
  link: string;
}
interface VirgaDevices {
  block: VirgaBlockSlot[];
  net: VirgaNetSlot[];
  balloon: { device: string; "driver-ready": boolean } | null;
  backends: { block: { "node-name": string }[]; net: { id: string }[] };
}

export interface DeviceVmm {
  /** Shown in scenario names. */
  label: string;
  command: string;
  /** The Debian guest with a shell on its console, a QMP socket and the boot-time devices. */
  args(options: BootOptions): string[];
  /** device_add arguments for a hot-plugged disk whose backend is `id`. */
  diskDeviceAdd(id: string): Record<string, unknown>;
  /** netdev_add arguments for a tap opened by name. */
  netdevAdd(id: string, tap: string): Record<string, unknown>;
  nicDeviceAdd(id: string): Record<string, unknown>;
  /** After DEVICE_DELETED of a disk: what the VMM needs so that no fd stays open. */
  releaseDisk(qmp: QmpClient, id: string): Promise<void>;
  /** The VMM's own view, where it has one (virga-vmm's extensions); the reference checks nothing. */
  checkDisk(
    qmp: QmpClient,
    id: string,
    expected: { file: string; size: number } | null,
  ): Promise<void>;
  checkNic(qmp: QmpClient, id: string, expected: { tap: string; mac: string }): Promise<void>;
  checkBalloon(qmp: QmpClient, memoryBytes: number): Promise<void>;
  /** Between device_del and DEVICE_DELETED, while the guest still holds the slot. */
  whileUnplugging?(qmp: QmpClient, id: string): Promise<void>;
}

/** The scenarios' guest command line: quiet, and a shell on the console. */
const DEVICE_APPEND = "console=ttyS0 quiet virga.action=stay";

const kernelArgs = (memMiB: number): string[] =>
  linuxKernelArgs({ smp: "1", mem: String(memMiB), append: DEVICE_APPEND });

export const VIRGA: DeviceVmm = {
  label: "virga-vmm",
  command: vmmBin,
  args: (o) => [
    "-machine",
    "microvm",
    ...kernelArgs(o.memMiB),
    ...(o.disks ?? []).flatMap((d) => [
      "-drive",
      `file=${d.file},id=${d.id},readonly=${d.readOnly === true ? "on" : "off"}`,
      "-device",
      `virtio-blk-device,drive=${d.id},id=${d.id}`,
    ]),
    ...(o.balloon === true ? ["-device", "virtio-balloon-device,id=balloon0"] : []),
    "-qmp",
    `unix:${o.qmpSocket},server,nowait`,
    "-serial",
    "stdio",
  ],
  // The microvm's rule (docs/devices.md): the backend is the one named like the device.
  diskDeviceAdd: (id) => ({ driver: "virtio-blk-mmio", id }),
  netdevAdd: (id, tap) => ({ id, type: "tap", ifname: tap }),
  nicDeviceAdd: (id) => ({ driver: "virtio-net-mmio", id }),
  // device_del closes the backend itself.
  releaseDisk: () => Promise.resolve(),
  async checkDisk(qmp, id, expected) {
    const devices = (await qmp.execute("virga-query-devices")) as VirgaDevices;
    const slot = devices.block.find((b) => b.device === id);
    if (expected === null) {
      assert.equal(slot, undefined, `virga-query-devices still shows ${id}`);
      assert.ok(
        !devices.backends.block.some((b) => b["node-name"] === id),
        `backend ${id} is still open after device_del`,
      );
      return;
    }
    assert.ok(slot !== undefined, `virga-query-devices has no block device ${id}`);
    assert.equal(slot["node-name"], id);
    assert.equal(slot.file, expected.file);
    assert.equal(slot.size, expected.size);
    assert.equal(slot["guest-name"], "vdb");
  },
  async checkNic(qmp, id, expected) {
    const devices = (await qmp.execute("virga-query-devices")) as VirgaDevices;
    const slot = devices.net.find((n) => n.device === id);
    assert.ok(slot !== undefined, `virga-query-devices has no NIC ${id}`);
    assert.equal(slot.ifname, expected.tap);
    assert.equal(slot.link, "up");
    assert.equal(slot.mac, expected.mac);
    assert.equal(slot["guest-name"], "eth0");
  },
  async checkBalloon(qmp, memoryBytes) {
    const balloon = (await qmp.execute("virga-query-balloon")) as {
      actual: number;
      target: number;
      memory: number;
    };
    assert.equal(balloon.memory, memoryBytes);
    assert.equal(balloon.actual, balloon.target);
  },
};

/** virga-vmm's q35 view of one PCI function (virga-query-devices, docs/q35.md). */
interface VirgaPciFunction {
  id: string;
  driver: string;
  bus: string;
  "node-name"?: string;
  file?: string;
  size?: number;
  ifname?: string;
  mac?: string;
  link?: string;
}
interface VirgaQ35Devices {
  pci: VirgaPciFunction[];
  backends: { block: { "node-name": string }[]; net: { id: string }[] };
}

async function q35Function(qmp: QmpClient, id: string): Promise<VirgaPciFunction | undefined> {
  const devices = (await qmp.execute("virga-query-devices")) as VirgaQ35Devices;
  return devices.pci.find((f) => f.id === id);
}

/**
 * virga-vmm's standard machine (docs/q35.md): root ports pcie.1 (the seed's
 * hot-plug bus) and, for disks present from boot, one more each; hot-plug
 * with the seed's standard-machine requests as written (addr 0x0, bus pcie.1).
 */
export const VIRGA_Q35: DeviceVmm = {
  label: "virga-vmm q35",
  command: vmmBin,
  args: (o) => [
    "-machine",
    "q35",
    ...kernelArgs(o.memMiB),
    "-device",
    "pcie-root-port,id=pcie.1,port=0x1,bus=pcie.0,addr=0x2",
    ...(o.disks ?? []).flatMap((d, i) => [
      "-device",
      `pcie-root-port,id=pcie.${i + 2},port=0x${(i + 2).toString(16)},bus=pcie.0,addr=0x${(i + 3).toString(16)}`,
      "-drive",
      `file=${d.file},id=${d.id},readonly=${d.readOnly === true ? "on" : "off"}`,
      "-device",
      `virtio-blk-pci,drive=${d.id},id=${d.id},bus=pcie.${i + 2},addr=0x0`,
    ]),
    ...(o.balloon === true
      ? ["-device", "virtio-balloon-pci,id=balloon0,bus=pcie.0,addr=0x1f"]
      : []),
    "-qmp",
    `unix:${o.qmpSocket},server,nowait`,
    "-serial",
    "stdio",
  ],
  diskDeviceAdd: (id) => ({
    id,
    driver: "virtio-blk-pci",
    drive: id,
    addr: "0x0",
    bus: "pcie.1",
  }),
  netdevAdd: (id, tap) => ({ id, ifname: tap }),
  nicDeviceAdd: (id) => ({
    id,
    driver: "virtio-net-pci",
    addr: "0x0",
    netdev: id,
    bus: "pcie.1",
  }),
  // The seed's standard-machine unplug: device_del, DEVICE_DELETED, then blockdev-del.
  async releaseDisk(qmp, id) {
    await qmp.execute("blockdev-del", { "node-name": id });
  },
  async checkDisk(qmp, id, expected) {
    const disk = await q35Function(qmp, id);
    if (expected === null) {
      assert.equal(disk, undefined, `virga-query-devices still shows ${id}`);
      const devices = (await qmp.execute("virga-query-devices")) as VirgaQ35Devices;
      assert.ok(
        !devices.backends.block.some((b) => b["node-name"] === id),
        `backend ${id} is still open after blockdev-del`,
      );
      return;
    }
    assert.ok(disk !== undefined, `virga-query-devices has no PCI function ${id}`);
    assert.equal(disk.driver, "virtio-blk-pci");
    assert.equal(disk.bus, "pcie.1");
    assert.equal(disk["node-name"], id);
    assert.equal(disk.file, expected.file);
    assert.equal(disk.size, expected.size);
  },
  async checkNic(qmp, id, expected) {
    const nic = await q35Function(qmp, id);
    assert.ok(nic !== undefined, `virga-query-devices has no PCI function ${id}`);
    assert.equal(nic.driver, "virtio-net-pci");
    assert.equal(nic.ifname, expected.tap);
    assert.equal(nic.link, "up");
    assert.equal(nic.mac, expected.mac);
  },
  checkBalloon: (qmp, memoryBytes) => VIRGA.checkBalloon(qmp, memoryBytes),
  // pciehp waits 5 s after the attention button before it lets go.
  async whileUnplugging(qmp, id) {
    await assert.rejects(qmp.execute("device_del", { id }), (error: Error) => {
      assert.match(
        error.message,
        /is already being unplugged: the guest has not released its slot yet/,
      );
      return true;
    });
  },
};

const pciePorts = [
  "-device",
  "pcie-root-port,id=rp1,chassis=1,slot=1",
  "-device",
  "pcie-root-port,id=rp2,chassis=2,slot=2",
];

export const QEMU_REFERENCE: DeviceVmm = {
  label: "QEMU q35 reference",
  command: "qemu-system-x86_64",
  args: (o) => [
    "-M",
    "q35",
    "-enable-kvm",
    "-cpu",
    "host",
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    ...kernelArgs(o.memMiB),
    ...pciePorts,
    ...(o.disks ?? []).flatMap((d) => [
      "-drive",
      `file=${d.file},if=none,id=${d.id},format=raw,readonly=${d.readOnly === true ? "on" : "off"}`,
      "-device",
      `virtio-blk-pci,drive=${d.id},id=${d.id}`,
    ]),
    ...(o.balloon === true ? ["-device", "virtio-balloon-pci,id=balloon0"] : []),
    "-qmp",
    `unix:${o.qmpSocket},server=on,wait=off`,
    "-serial",
    "stdio",
  ],
  diskDeviceAdd: (id) => ({ driver: "virtio-blk-pci", id, drive: id, bus: "rp1" }),
  netdevAdd: (id, tap) => ({
    type: "tap",
    id,
    ifname: tap,
    script: "no",
    downscript: "no",
    vhost: false,
  }),
  nicDeviceAdd: (id) => ({ driver: "virtio-net-pci", id, netdev: id, bus: "rp2" }),
  // QEMU keeps a blockdev-add node after device_del until blockdev-del.
  async releaseDisk(qmp, id) {
    await qmp.execute("blockdev-del", { "node-name": id });
  },
  checkDisk: () => Promise.resolve(),
  checkNic: () => Promise.resolve(),
  checkBalloon: () => Promise.resolve(),
};
