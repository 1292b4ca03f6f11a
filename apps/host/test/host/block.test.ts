// virtio-blk through the probe guest: sectors written by the guest land in
// the host file, read-only disks refuse writes, slots follow -device order.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import { makeDisk, readSector, sectorPattern, tempDir } from "../support/disk";
import { probeArgs, requireKvmHost, withVmm } from "../support/guest";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };

describe("virtio-blk", () => {
  before(() => {
    requireKvmHost();
  });

  it("writes a sector pattern that the host reads back after power-off", TEST, async () => {
    const tmp = tempDir();
    try {
      const disk = makeDisk(tmp.dir);
      const args = [
        ...probeArgs(),
        "-drive",
        `file=${disk},id=d0,readonly=off,direct=off`,
        "-device",
        "virtio-blk-device,drive=d0,id=vda",
      ];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/PROBE virtio-blk 0 base=0x[0-9a-f]+ irq=\d+ capacity=2048 ro=0/, BOOT_MS);
        await vm.waitFor(/probe> /, BOOT_MS);
        vm.send("blk 0 write 5 42");
        await vm.waitFor(/OK blk write/);
        vm.send("blk 0 verify 5 42");
        await vm.waitFor(/OK blk verify/);
        vm.send("blk 0 flush");
        await vm.waitFor(/OK blk flush/);
        vm.send("blk 0 read 5");
        const read = await vm.waitFor(/OK blk read ([0-9a-f ]+)\r?\n/);
        assert.equal(
          read[1]?.replace(/ /g, ""),
          sectorPattern(5, 42).subarray(0, 16).toString("hex"),
        );
        vm.send("poweroff");
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
      assert.deepEqual(readSector(disk, 5), sectorPattern(5, 42));
      assert.ok(readSector(disk, 4).equals(Buffer.alloc(512)), "neighbouring sector untouched");
    } finally {
      tmp.cleanup();
    }
  });

  it("refuses writes to a readonly=on disk and leaves the file unchanged", TEST, async () => {
    const tmp = tempDir();
    try {
      const disk = makeDisk(tmp.dir);
      writeFileSync(disk, sectorPattern(0, 7), { flag: "r+" });
      const args = [
        ...probeArgs(),
        "-drive",
        `file=${disk},id=ro,readonly=on`,
        "-device",
        "virtio-blk-device,drive=ro",
      ];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/PROBE virtio-blk 0 .* ro=1/, BOOT_MS);
        await vm.waitFor(/probe> /, BOOT_MS);
        vm.send("blk 0 write 0 99");
        await vm.waitFor(/ERR blk write status=1/);
        vm.send("blk 0 verify 0 7");
        await vm.waitFor(/OK blk verify/);
        vm.send("poweroff");
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
      assert.deepEqual(readSector(disk, 0), sectorPattern(0, 7));
    } finally {
      tmp.cleanup();
    }
  });

  it("fills block slots in -device order", TEST, async () => {
    const tmp = tempDir();
    try {
      const small = makeDisk(tmp.dir, "small.img", 64 * 1024);
      const large = makeDisk(tmp.dir, "large.img", 256 * 1024);
      const args = [
        ...probeArgs(),
        "-drive",
        `file=${small},id=small`,
        "-drive",
        `file=${large},id=large`,
        "-device",
        "virtio-blk-device,drive=large",
        "-device",
        "virtio-blk-device,drive=small",
      ];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/PROBE virtio-blk 0 .* capacity=512 ro=0/, BOOT_MS);
        await vm.waitFor(/PROBE virtio-blk 1 .* capacity=128 ro=0/, BOOT_MS);
        await vm.waitFor(/PROBE ready/, BOOT_MS);
      });
    } finally {
      tmp.cleanup();
    }
  });
});
