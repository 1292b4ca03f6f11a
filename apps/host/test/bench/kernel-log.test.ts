import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseKernelLog, plugTimeline } from "../../bench/kernel-log";

// As busybox's dmesg printed Debian 6.1's hot-plug of a disk into a root port.
const PLUG = [
  "~ # dmesg | grep -E 'pciehp|virtio_blk'",
  "[   12.501234] pcieport 0000:00:02.0: pciehp: Slot(1): Attention button pressed",
  "[   12.501301] pcieport 0000:00:02.0: pciehp: Slot(1): Powering on due to button press",
  "[   12.502010] pcieport 0000:00:02.0: pciehp: Slot(1): Card present",
  "[   12.502100] pcieport 0000:00:02.0: pciehp: Slot(1): Link Up",
  "[   12.731000] virtio_blk virtio2: [vdb] 16384 512-byte logical blocks (8.39 MB/8.00 MiB)",
  "~ # ",
].join("\r\n");

describe("kernel log (bench q35 hot-plug)", () => {
  it("keeps timestamped lines and skips the shell's", () => {
    const lines = parseKernelLog(PLUG);
    assert.equal(lines.length, 5);
    assert.deepEqual(lines[0], {
      at: 12.501234,
      message: "pcieport 0000:00:02.0: pciehp: Slot(1): Attention button pressed",
    });
    assert.equal(parseKernelLog("[1234.5] x\n<6>[  0.000000] Linux version 6.1")[1]?.at, 0);
  });

  it("times slot-up and the disk from the attention button", () => {
    const t = plugTimeline(parseKernelLog(PLUG), "vdb");
    assert.ok(Math.abs(t.slotUpS - 0.000776) < 1e-9, String(t.slotUpS));
    assert.ok(Math.abs(t.diskS - 0.229766) < 1e-9, String(t.diskS));
  });

  it("takes Link Up when the slot reports no presence line", () => {
    const log = PLUG.split("\r\n")
      .filter((l) => !l.includes("Card present"))
      .join("\n");
    assert.ok(Math.abs(plugTimeline(parseKernelLog(log), "vdb").slotUpS - 0.000866) < 1e-9);
  });

  it("names the line it cannot find", () => {
    assert.throws(
      () => plugTimeline(parseKernelLog(PLUG), "vdc"),
      /no virtio_blk '\[vdc\]' line:\n\[12\.501234\] pcieport/,
    );
    assert.throws(
      () => plugTimeline(parseKernelLog("[ 1.0] virtio_blk virtio2: [vdb] 8 blocks"), "vdb"),
      /no pciehp 'Attention button pressed' line/,
    );
  });
});
