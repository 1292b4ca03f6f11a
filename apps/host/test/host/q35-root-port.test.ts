// PCIe root ports on the q35 board under virga-vmm on this machine's KVM,
// seen by the probe guest: the port on pcie.0 with its bus numbers, memory
// window, PCI Express and MSI capabilities, the virtio-blk-pci disk behind
// it on bus 1 driven by MSI-X, and the slot's native hot-plug registers
// and interrupt as a hot-plug driver uses them (docs/q35.md).
import assert from "node:assert/strict";
import path from "node:path";
import { before, describe, it } from "node:test";
import { makeDisk, readSector, sectorPattern, tempDir } from "../support/disk";
import { connectQmp, requireKvmHost, withVmm } from "../support/guest";
import { probeGuest } from "../support/paths";
import { pciFunctions, probeLines, refusedWith, slot } from "../support/pci";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };
const INTERRUPT_MS = 2000;

export function q35Args(extra: readonly string[]): string[] {
  return ["-machine", "q35", "-kernel", probeGuest, "-smp", "1", "-m", "128", ...extra];
}

describe("PCIe root ports on q35", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "the probe finds the root port on pcie.0 and the disk behind it on bus 1, and reads and writes the disk by MSI-X",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const args = q35Args([
          "-device",
          "pcie-root-port,id=pcie.1,port=0x1,bus=pcie.0,addr=0x2,multifunction=on,chassis=1",
          "-device",
          "pcie-root-port,id=pcie.2,port=0x2,bus=pcie.0,addr=0x2.0x1",
          "-drive",
          `file=${disk},id=d0`,
          "-device",
          "virtio-blk-pci,drive=d0,id=disk0,bus=pcie.1,addr=0x0",
        ]);
        await withVmm(args, async (vm) => {
          await vm.waitFor(/PROBE virtio-blk 0 pci=01:00\.0 capacity=2048 ro=0/, BOOT_MS);
          await vm.waitFor(/probe> /, BOOT_MS);
          vm.send("pci");
          await vm.waitFor(/OK pci \d+/, BOOT_MS);
          assert.deepEqual(pciFunctions(vm.serial.lines(/^pci /)), [
            "00:00.0 8086:29c0 060000",
            "00:02.0 1b36:000c 060400",
            "00:02.1 1b36:000c 060400",
            "01:00.0 1af4:1042 018000",
          ]);
          // Bus numbers and windows as firmware would leave them: 2 MiB each from 0xc1000000.
          assert.deepEqual(
            await probeLines(vm, "pci show 00:02.0", "pci 00:02.0 ", /OK pci show/),
            [
              "bridge buses 00-01-01 memory 0xc1000000-0xc11fffff",
              "cap 0x40 id=0x10 pcie type=4 slot=1 sltcap=0xc005b lnkcap=0x1100011",
              "cap 0x7c id=0x05 msi 64bit=1",
            ],
          );
          assert.deepEqual(
            await probeLines(vm, "pci show 00:02.1", "pci 00:02.1 bridge ", /OK pci show/),
            ["buses 00-02-02 memory 0xc1200000-0xc13fffff"],
          );
          // The disk's BARs start its port's window.
          const bars = await probeLines(vm, "pci show 01:00.0", "pci 01:00.0 bar", /OK pci show/);
          assert.deepEqual(bars, [
            "0 0xc1000000 size=0x4000 mem32",
            "1 0xc1004000 size=0x1000 mem32",
          ]);
          // Occupied and powered, link up; the empty port's slot is off.
          assert.deepEqual(await slot(vm, "00:02.0"), {
            ctl: 0x01c0,
            sta: 0x0040,
            link: 0x3011,
            irqs: 0,
          });
          assert.deepEqual(await slot(vm, "00:02.1"), {
            ctl: 0x07c0,
            sta: 0,
            link: 0x1011,
            irqs: 0,
          });

          const start = Date.now();
          vm.send("blk 0 write 7 11");
          await vm.waitFor(/OK blk write/, BOOT_MS);
          vm.send("blk 0 verify 7 11");
          await vm.waitFor(/OK blk verify/, BOOT_MS);
          const ms = Date.now() - start;
          assert.ok(ms < 2 * INTERRUPT_MS, `a write and a read took ${ms} ms: interrupts missing`);
          vm.send("blk 0 flush");
          await vm.waitFor(/OK blk flush/);
          vm.send("poweroff");
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          assert.equal(vm.stderr, "");
        });
        assert.deepEqual(readSector(disk, 7), sectorPattern(7, 11));
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "device_add into a root port: presence and the hot-plug interrupt, the disk appears once the slot is powered; device_del ends with DEVICE_DELETED once the guest powers it off; every mistake is refused by name",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const socketPath = path.join(tmp.dir, "qmp.sock");
        const args = q35Args([
          "-device",
          "pcie-root-port,id=pcie.1,port=0x1,bus=pcie.0,addr=0x2",
          "-device",
          "pcie-root-port,id=pcie.2,port=0x2,bus=pcie.0,addr=0x3",
          "-qmp",
          `unix:${socketPath},server,nowait`,
        ]);
        await withVmm(args, async (vm) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          const qmp = await connectQmp(socketPath, vm);
          // What pciehp does at probe: MSI, then slot events and the interrupt enabled.
          assert.deepEqual(await slot(vm, "00:02.0", "arm"), {
            ctl: 0x17e9,
            sta: 0,
            link: 0x1011,
            irqs: 0,
          });
          assert.deepEqual(
            await qmp.execute("blockdev-add", {
              "node-name": "drive-1",
              file: { driver: "file", filename: disk },
              cache: { direct: false },
              "read-only": false,
            }),
            {},
          );
          const add = {
            driver: "virtio-blk-pci",
            id: "disk1",
            drive: "drive-1",
            bus: "pcie.1",
            addr: "0x0",
          };
          assert.deepEqual(await qmp.execute("device_add", add), {});
          // Presence and its change, and the attention button (pciehp powers the slot
          // on after it), one interrupt; nothing answers until the slot has power.
          assert.deepEqual(await slot(vm, "00:02.0"), {
            ctl: 0x17e9,
            sta: 0x49,
            link: 0x1011,
            irqs: 1,
          });
          assert.deepEqual(await slot(vm, "00:02.0", "ack"), {
            ctl: 0x17e9,
            sta: 0x40,
            link: 0x1011,
            irqs: 1,
          });
          // Powered: the link comes up (its change interrupts too) and the disk answers on bus 1.
          assert.deepEqual(await slot(vm, "00:02.0", "on"), {
            ctl: 0x11e9,
            sta: 0x140,
            link: 0x3011,
            irqs: 2,
          });
          assert.deepEqual(await slot(vm, "00:02.0", "ack"), {
            ctl: 0x11e9,
            sta: 0x40,
            link: 0x3011,
            irqs: 2,
          });
          vm.send("pci");
          await vm.waitFor(/OK pci \d+/, BOOT_MS);
          assert.ok(
            pciFunctions(vm.serial.lines(/^pci /)).includes("01:00.0 1af4:1042 018000"),
            "the hot-plugged disk is on bus 1",
          );

          const listed = (await qmp.execute("virga-query-devices")) as {
            machine: string;
            pci: Record<string, unknown>[];
          };
          assert.equal(listed.machine, "q35");
          assert.deepEqual(
            listed.pci.map((f) => [
              f.id,
              f.driver,
              f.bus,
              f.addr,
              "device" in f ? f.device : f["node-name"],
            ]),
            [
              ["pcie.1", "pcie-root-port", "pcie.0", "0x2.0", "disk1"],
              ["pcie.2", "pcie-root-port", "pcie.0", "0x3.0", null],
              ["disk1", "virtio-blk-pci", "pcie.1", "0x0.0", "drive-1"],
            ],
          );
          // No balloon here: the balloon commands say so, as on the microvm.
          await refusedWith(qmp, "query-balloon", {}, /^No balloon device has been activated$/);
          await refusedWith(qmp, "device_add", add, /^id: device 'disk1' already exists$/);
          await refusedWith(
            qmp,
            "device_add",
            { ...add, id: "disk2" },
            /^bus: root port 'pcie\.1' is occupied by device 'disk1'$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...add, id: "disk2", bus: "pcie.9" },
            /^bus: no bus 'pcie\.9'; expected a pcie-root-port's id \('pcie\.1', 'pcie\.2'\)$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...add, id: "disk2", bus: "pcie.0" },
            /^bus: pcie\.0 has no hot-plug controller; plug virtio-blk-pci into a pcie-root-port \('pcie\.1', 'pcie\.2'\)$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...add, id: "disk2", bus: "pcie.2", addr: "0x1" },
            /^addr: a root port has one slot; expected "0x0", got '0x1'$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...add, id: "disk2", bus: "pcie.2", drive: "nope" },
            /^drive: no backend 'nope' \(add it with blockdev-add first\)$/,
          );
          // vfio-pci by hot-plug: the same rules of place, then the VMM's own
          // refusal by name (this host has no /dev/vfio).
          const vfio = { driver: "vfio-pci", id: "vf0", host: "0000:01:00.0", bus: "pcie.2" };
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, addr: "0x0" },
            /^vfio-pci device vf0: \/dev\/vfio\/vfio \(VFIO: load the vfio, vfio_pci and vfio_iommu_type1 modules\): No such file or directory$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, bus: "pcie.0" },
            /^bus: pcie\.0 has no hot-plug controller; plug vfio-pci into a pcie-root-port \('pcie\.1', 'pcie\.2'\)$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, bus: "pcie.9" },
            /^bus: no bus 'pcie\.9'; expected a pcie-root-port's id/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, addr: "0x1" },
            /^addr: a root port has one slot; expected "0x0", got '0x1'$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, bus: "pcie.1" },
            /^bus: root port 'pcie\.1' is occupied by device 'disk1'$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, id: "disk1" },
            /^id: device 'disk1' already exists$/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, sysfsdev: "/sys/bus/pci/devices/0000:01:00.0" },
            /^host: vfio-pci takes exactly one of host \(DDDD:BB:SS\.F\) and sysfsdev/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...vfio, host: "1:0.0" },
            /^host: expected a PCI address DDDD:BB:SS\.F/,
          );

          assert.deepEqual(await qmp.execute("device_del", { id: "disk1" }), {});
          // The attention button, one more interrupt; the guest has not let go yet.
          assert.deepEqual(await slot(vm, "00:02.0"), {
            ctl: 0x11e9,
            sta: 0x41,
            link: 0x3011,
            irqs: 3,
          });
          await refusedWith(
            qmp,
            "device_del",
            { id: "disk1" },
            /^id: device 'disk1' is already being unplugged: the guest has not released its slot yet/,
          );
          await refusedWith(
            qmp,
            "device_add",
            { ...add, id: "disk2", drive: "drive-2" },
            /^bus: root port 'pcie\.1' is still unplugging device 'disk1'/,
          );
          await refusedWith(
            qmp,
            "blockdev-del",
            { "node-name": "drive-1" },
            /^node-name: 'drive-1' is attached to device 'disk1'; device_del it first/,
          );
          assert.equal(
            qmp.events.filter((e) => e.event === "DEVICE_DELETED").length,
            0,
            "no DEVICE_DELETED before the guest lets go",
          );
          // The guest lets go: power and power indicator off.
          await slot(vm, "00:02.0", "off");
          const deleted = await qmp.waitForEvent("DEVICE_DELETED");
          assert.deepEqual(deleted.data, { device: "disk1", path: "/machine/peripheral/disk1" });
          assert.deepEqual(await qmp.execute("blockdev-del", { "node-name": "drive-1" }), {});
          await refusedWith(qmp, "device_del", { id: "disk1" }, /^Device 'disk1' not found$/);
          assert.deepEqual(await qmp.execute("query-status"), {
            running: true,
            singlestep: false,
            status: "running",
          });
          const before = vm.serial.lines(/^pci /).length;
          vm.send("pci");
          await vm.waitFor(/OK pci 3\b/, BOOT_MS);
          assert.deepEqual(pciFunctions(vm.serial.lines(/^pci /).slice(before)), [
            "00:00.0 8086:29c0 060000",
            "00:02.0 1b36:000c 060400",
            "00:03.0 1b36:000c 060400",
          ]);
          qmp.close();
        });
      } finally {
        tmp.cleanup();
      }
    },
  );
});
