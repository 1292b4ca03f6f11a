// virtio-pci on the q35 board under virga-vmm on this machine's KVM, driven
// by the probe guest: it finds the functions on pcie.0 by their ECAM scan,
// reads their BARs and virtio capabilities, and drives a virtio-blk-pci
// disk through the modern transport with MSI-X interrupts (docs/q35.md).
import assert from "node:assert/strict";
import path from "node:path";
import { before, describe, it } from "node:test";
import { makeDisk, readSector, sectorPattern, tempDir } from "../support/disk";
import { connectQmp, requireKvmHost, withVmm, type VmmProcess } from "../support/guest";
import { probeGuest } from "../support/paths";
import { pciFunctions } from "../support/pci";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };
// A request answered by its MSI-X vector takes milliseconds; one whose
// interrupt never came ends with the probe's 5 s timer instead.
const INTERRUPT_MS = 2000;

function q35Args(extra: readonly string[]): string[] {
  return ["-machine", "q35", "-kernel", probeGuest, "-smp", "1", "-m", "128", ...extra];
}

/** The lines `pci show <bdf>` printed, without the prefix. */
async function pciShow(vm: VmmProcess, bdf: string): Promise<string[]> {
  const before = vm.serial.lines(/^pci /).length;
  vm.send(`pci show ${bdf}`);
  await vm.waitFor(/OK pci show/, BOOT_MS);
  return vm.serial
    .lines(/^pci /)
    .slice(before)
    .map((l) => l.slice(`pci ${bdf} `.length));
}

async function timed(vm: VmmProcess, command: string, answer: RegExp): Promise<number> {
  const start = Date.now();
  vm.send(command);
  await vm.waitFor(answer, BOOT_MS);
  return Date.now() - start;
}

describe("virtio-pci on q35", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "the probe finds virtio-blk-pci and virtio-balloon-pci with their BARs and capabilities, and reads and writes the disk by MSI-X",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const args = q35Args([
          "-drive",
          `file=${disk},id=d0`,
          "-device",
          "virtio-blk-pci,drive=d0,id=disk0,bus=pcie.0,addr=0x3",
          "-device",
          "virtio-balloon-pci,id=balloon0,bus=pcie.0,addr=0x4",
        ]);
        await withVmm(args, async (vm) => {
          await vm.waitFor(/PROBE virtio-blk 0 pci=00:03\.0 capacity=2048 ro=0/, BOOT_MS);
          await vm.waitFor(/probe> /, BOOT_MS);
          vm.send("pci");
          await vm.waitFor(/OK pci \d+/, BOOT_MS);
          assert.deepEqual(pciFunctions(vm.serial.lines(/^pci /)), [
            "00:00.0 8086:29c0 060000",
            "00:03.0 1af4:1042 018000",
            "00:04.0 1af4:1045 ff0000",
          ]);
          // Placed by the VMM in the root bus's window (0xc0000000, 32 KiB per function).
          assert.deepEqual(await pciShow(vm, "00:03.0"), [
            "bar0 0xc00c0000 size=0x4000 mem32",
            "bar1 0xc00c4000 size=0x1000 mem32",
            "cap 0x40 id=0x09 virtio type=1 bar=0 offset=0x0 length=0x38",
            "cap 0x50 id=0x09 virtio type=3 bar=0 offset=0x1000 length=0x1",
            "cap 0x60 id=0x09 virtio type=4 bar=0 offset=0x2000 length=0x1000",
            "cap 0x70 id=0x09 virtio type=2 bar=0 offset=0x3000 length=0x4 multiplier=4",
            "cap 0x84 id=0x09 virtio type=5 bar=0 offset=0x0 length=0x0",
            "cap 0x98 id=0x11 msix vectors=2 table=bar1+0x0 pba=bar1+0x800",
          ]);
          // The balloon's four queues (free page reporting off: three) and a configuration vector.
          assert.ok(
            (await pciShow(vm, "00:04.0")).includes(
              "cap 0x98 id=0x11 msix vectors=4 table=bar1+0x0 pba=bar1+0x800",
            ),
          );
          const writeMs = await timed(vm, "blk 0 write 5 42", /OK blk write/);
          assert.ok(
            writeMs < INTERRUPT_MS,
            `a write took ${writeMs} ms: its interrupt did not arrive`,
          );
          const verifyMs = await timed(vm, "blk 0 verify 5 42", /OK blk verify/);
          assert.ok(
            verifyMs < INTERRUPT_MS,
            `a read took ${verifyMs} ms: its interrupt did not arrive`,
          );
          vm.send("blk 0 flush");
          await vm.waitFor(/OK blk flush/);
          vm.send("poweroff");
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          assert.equal(vm.stderr, "");
        });
        assert.deepEqual(readSector(disk, 5), sectorPattern(5, 42));
        assert.ok(readSector(disk, 4).equals(Buffer.alloc(512)), "neighbouring sector untouched");
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "after system_reset the disk is found again at its BARs and still answers by MSI-X; function 1 of its slot is seen too",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const socketPath = path.join(tmp.dir, "qmp.sock");
        const args = q35Args([
          "-drive",
          `file=${disk},id=d0`,
          "-device",
          "virtio-blk-pci,drive=d0,bus=pcie.0,addr=0x5.0",
          "-device",
          "virtio-balloon-pci,bus=pcie.0,addr=0x5.1",
          "-qmp",
          `unix:${socketPath},server,nowait`,
        ]);
        await withVmm(args, async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          vm.send("blk 0 write 9 3");
          await vm.waitFor(/OK blk write/);
          const qmp = await connectQmp(socketPath, vm);
          assert.deepEqual(await qmp.execute("system_reset"), {});
          await qmp.waitForEvent("RESET");
          await vm.waitFor(/PROBE boot entry/, BOOT_MS);
          await vm.waitFor(/PROBE virtio-blk 0 pci=00:05\.0 capacity=2048 ro=0/, BOOT_MS);
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          const verifyMs = await timed(vm, "blk 0 verify 9 3", /OK blk verify/);
          assert.ok(verifyMs < INTERRUPT_MS, `a read took ${verifyMs} ms after the reset`);
          // Function 0 says the slot is multi-function, so the scan goes on to 05.1.
          vm.send("pci");
          await vm.waitFor(/OK pci \d+/, BOOT_MS);
          assert.deepEqual(pciFunctions(vm.serial.lines(/^pci /)), [
            "00:00.0 8086:29c0 060000",
            "00:05.0 1af4:1042 018000",
            "00:05.1 1af4:1045 ff0000",
          ]);
          qmp.close();
          vm.send("poweroff");
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        });
      } finally {
        tmp.cleanup();
      }
    },
  );
});
