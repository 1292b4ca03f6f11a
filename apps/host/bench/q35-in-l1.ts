// The q35 section of `npm run bench linux`, run inside L1 (real KVM): the
// Debian guest on the standard machine under virga-vmm (`-machine q35`) and
// Debian's QEMU (`-M q35`), each with the same devices: root port 1 empty
// (the hot-plug slot), root port 2 holding a virtio-blk-pci disk.
//   boot:     process start → "VIRGA-GUEST ready" (direct kernel boot, same
//             kernel, initramfs, vCPUs, memory and disk), alternating; then
//             virga-vmm's boots to power-off with -D, for where its time goes
//   hot-plug: blockdev-add + device_add of a virtio-blk-pci disk into root
//             port 1 → /sys/block/vdb in the guest (a loop on its console
//             started before the request), with the guest kernel's own times
//             for pciehp and virtio_blk; device_del → /sys/block/vdb gone and
//             → DEVICE_DELETED; then blockdev-del. Rounds of one boot per VMM,
//             alternating, several plug/unplug cycles per boot.
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { QmpClient } from "../src/qmp/client";
import { QEMU_REFERENCE, VIRGA_Q35 } from "../test/linux/device-vmms";
import { connectQmp } from "../test/support/guest";
import { accountedBoot, describeAccounting, summariseAccounting } from "./accounted-boot";
import { bootGuest, stop, type BootedGuest, withTranscript } from "./devices-in-l1";
import { parseKernelLog, plugTimeline } from "./kernel-log";
import { bootOnce, median, qemuMicrovm, virgaKernelBoot } from "./measure";

const MARKER = "VIRGA-GUEST ready";
const TIMEOUT_MS = 180000;
const MIB = 1024 * 1024;
/** After an unplug, before the next plug (plugCycle says why). */
const SETTLE_MS = 2000;
/** What QEMU's q35 has that virga-vmm's does not, switched off (docs/q35.md lists the board). */
export const QEMU_Q35_MACHINE = "q35,sata=off,smbus=off,hpet=off";

export interface Q35Files {
  kernel: string;
  initrd: string;
  memMiB: string;
  smp: string;
  /** The disk in root port 2, from boot. */
  bootDisk: string;
}

interface Q35Vmm {
  key: "virga" | "qemu";
  command: string;
  args(files: Q35Files, append: string, qmpSocket: string | null): string[];
  /** device_add's arguments for a disk into root port 1, as the device scenarios send them. */
  diskDeviceAdd(id: string): Record<string, unknown>;
}

function virgaQ35(vmmBin: string): Q35Vmm {
  return {
    key: "virga",
    command: vmmBin,
    args: (files, append, qmpSocket) => [
      ...virgaKernelBoot({ machine: "q35", ...files, append }),
      "-device",
      "pcie-root-port,id=pcie.1,port=0x1,bus=pcie.0,addr=0x2",
      "-device",
      "pcie-root-port,id=pcie.2,port=0x2,bus=pcie.0,addr=0x3",
      // direct=off: L1's tmpfs has no O_DIRECT (test/nested/README.md).
      "-drive",
      `file=${files.bootDisk},id=boot,readonly=off,direct=off`,
      "-device",
      "virtio-blk-pci,drive=boot,id=boot,bus=pcie.2,addr=0x0",
      ...(qmpSocket === null ? [] : ["-qmp", `unix:${qmpSocket},server,nowait`]),
    ],
    diskDeviceAdd: (id) => VIRGA_Q35.diskDeviceAdd(id),
  };
}

// The same board as far as QEMU's q35 lets it be: the root ports at the
// same slots with the same slot numbers, the disk behind the second.
// QEMU's q35 always starts its firmware (SeaBIOS), which loads the kernel.
// Since QEMU 6.1 its q35 hot-plugs into root ports through ACPI (the
// guest's acpiphp); switched off, its root ports use native PCIe hot-plug
// as virga-vmm's do, so the guest's pciehp does the same work under both.
const qemuQ35: Q35Vmm = {
  key: "qemu",
  command: "qemu-system-x86_64",
  args: (files, append, qmpSocket) =>
    qemuMicrovm({
      machine: QEMU_Q35_MACHINE,
      cpu: "host",
      smp: files.smp,
      memMiB: files.memMiB,
      kernel: files.kernel,
      initrd: files.initrd,
      append,
      extra: [
        "-global",
        "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
        "-device",
        "pcie-root-port,id=rp1,port=1,chassis=1,slot=1,bus=pcie.0,addr=0x2",
        "-device",
        "pcie-root-port,id=rp2,port=2,chassis=2,slot=2,bus=pcie.0,addr=0x3",
        "-drive",
        `file=${files.bootDisk},if=none,id=boot,format=raw`,
        "-device",
        "virtio-blk-pci,drive=boot,id=boot,bus=rp2,addr=0x0",
        ...(qmpSocket === null ? [] : ["-qmp", `unix:${qmpSocket},server=on,wait=off`]),
      ],
    })[1],
  diskDeviceAdd: (id) => QEMU_REFERENCE.diskDeviceAdd(id),
};

export async function q35BootFigures(
  vmmBin: string,
  files: Q35Files,
  runs: number,
  scratch: string,
  log: (line: string) => void,
) {
  const append = "console=ttyS0 quiet virga.action=poweroff";
  const vmms = [virgaQ35(vmmBin), qemuQ35];
  const bytes = Number(files.memMiB) * MIB;
  const samples = { virga: [] as number[], qemu: [] as number[] };
  for (let i = 0; i < runs; i++) {
    for (const vmm of vmms) {
      const args = vmm.args(files, append, null);
      samples[vmm.key].push((await bootOnce(vmm.command, args, MARKER, bytes, TIMEOUT_MS)).readyMs);
    }
    log(
      `q35 run ${i + 1}: virga ${samples.virga.at(-1)?.toFixed(0)} ms, qemu ${samples.qemu.at(-1)?.toFixed(0)} ms`,
    );
  }
  const accounted = [];
  const virga = vmms[0] ?? virgaQ35(vmmBin);
  for (let i = 0; i < runs; i++) {
    const args = virga.args(files, append, null);
    const one = await accountedBoot(virga.command, args, MARKER, path.join(scratch, "q35.log"));
    accounted.push(one);
    log(`q35 ${describeAccounting(i + 1, one)}`);
  }
  return {
    runs,
    qemuMachine: QEMU_Q35_MACHINE,
    virga: { medianMs: median(samples.virga), samples: samples.virga },
    qemu: { medianMs: median(samples.qemu), samples: samples.qemu },
    virgaAccounting: summariseAccounting(accounted),
  };
}

/** One plug and unplug, each time from just before the request (ms). */
export interface PlugCycle {
  addReplyMs: number;
  /** device_add sent → the guest's loop printed that /sys/block/vdb exists. */
  presentMs: number;
  /** The guest kernel's own clock: pciehp's "Attention button pressed" → slot up, → "[vdb]". */
  guestSlotUpMs: number;
  guestDiskMs: number;
  delReplyMs: number;
  /** device_del sent → the guest's loop printed that /sys/block/vdb is gone. */
  goneMs: number;
  deletedEventMs: number;
  /** The guest kernel's pciehp and virtio_blk lines of the plug. */
  guestLog: string[];
}
type Timing = Exclude<keyof PlugCycle, "guestLog">;

// Markers split by quotes, so the shell's echo of the typed line never matches.
const mark = (word: string): string => `VIRGA-HP" "${word}`;
const markSeen = (word: string): RegExp => new RegExp(`VIRGA-HP ${word}\\r?\\n`);
// 20 ms between looks: the loop's own cost stays small beside pciehp's work
// on the guest's one vCPU, and both VMMs' figures carry the same 10 ms on average.
const poll = (test: string, word: string): string =>
  `echo ${mark("armed")}; while ${test}; do sleep 0.02; done; echo ${mark(word)}`;

async function plugCycle(
  guest: BootedGuest,
  qmp: QmpClient,
  vmm: Q35Vmm,
  file: string,
  id: string,
): Promise<PlugCycle> {
  const { console } = guest;
  await qmp.execute("blockdev-add", {
    "node-name": id,
    driver: "raw",
    file: { driver: "file", filename: file },
  });
  // The log of this plug alone.
  console.send(`dmesg -c >/dev/null; ${poll("[ ! -e /sys/block/vdb ]", "present")}`);
  await console.waitFor(markSeen("armed"), 60000);
  const added = performance.now();
  const present = console.waitFor(markSeen("present"), 60000).then(() => performance.now() - added);
  present.catch(() => undefined);
  await qmp.execute("device_add", vmm.diskDeviceAdd(id));
  const addReplyMs = performance.now() - added;
  const presentMs = await present;

  console.send(`echo ${mark("log")}; dmesg | grep -E 'pciehp|virtio_blk'; echo ${mark("log-end")}`);
  const logText = await console.waitFor(/VIRGA-HP log\r?\n([\s\S]*?)VIRGA-HP log-end/, 60000);
  const lines = parseKernelLog(logText[1] ?? "");
  const timeline = plugTimeline(lines, "vdb");

  console.send(poll("[ -e /sys/block/vdb ]", "gone"));
  await console.waitFor(markSeen("armed"), 60000);
  const deleted = performance.now();
  const gone = console.waitFor(markSeen("gone"), 60000).then(() => performance.now() - deleted);
  const event = qmp
    .waitFor(
      (m) => m.event === "DEVICE_DELETED" && (m.data as { device?: string }).device === id,
      60000,
    )
    .then(() => performance.now() - deleted);
  gone.catch(() => undefined);
  event.catch(() => undefined);
  await qmp.execute("device_del", { id });
  const delReplyMs = performance.now() - deleted;
  const [goneMs, deletedEventMs] = await Promise.all([gone, event]);
  await qmp.execute("blockdev-del", { "node-name": id });
  // Linux's pciehp sleeps 1 s after powering the slot off and then drops
  // the presence events that came meanwhile: a plug within that second
  // loses its own and waits out the button's 5 s instead. virga-vmm sends
  // DEVICE_DELETED at the power-off, QEMU at the power indicator's
  // switching off after that second, so the next plug waits for the guest
  // to be done under both.
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return {
    addReplyMs,
    presentMs,
    guestSlotUpMs: timeline.slotUpS * 1000,
    guestDiskMs: timeline.diskS * 1000,
    delReplyMs,
    goneMs,
    deletedEventMs,
    guestLog: lines.map((l) => `[${l.at.toFixed(6)}] ${l.message}`),
  };
}

/** One boot of one VMM with `cycles` plug/unplug cycles. */
async function hotPlugRound(
  vmm: Q35Vmm,
  files: Q35Files,
  hotDisk: string,
  cycles: number,
  scratch: string,
): Promise<PlugCycle[]> {
  const socket = path.join(scratch, `${vmm.key}-q35.qmp`);
  rmSync(socket, { force: true });
  const guest = await bootGuest(
    vmm.command,
    vmm.args(files, "console=ttyS0 quiet virga.action=stay", socket),
  );
  let qmp: QmpClient | null = null;
  try {
    // The first client starts virga-vmm's control plane: seconds in L1, outside every clock.
    qmp = await connectQmp(socket, undefined, TIMEOUT_MS);
    await qmp.execute("qmp_capabilities");
    const out: PlugCycle[] = [];
    for (let c = 0; c < cycles; c++) out.push(await plugCycle(guest, qmp, vmm, hotDisk, `hp${c}`));
    return out;
  } catch (error) {
    throw withTranscript(vmm.key, guest, error);
  } finally {
    qmp?.close();
    await stop(guest);
  }
}

function summarise(cycles: PlugCycle[]) {
  const of = (key: Timing) => median(cycles.map((c) => c[key]));
  return {
    addReplyMs: of("addReplyMs"),
    presentMs: of("presentMs"),
    guestSlotUpMs: of("guestSlotUpMs"),
    guestDiskMs: of("guestDiskMs"),
    /** What the guest's pciehp and virtio_blk did not take: the request, the interrupt's way in, the loop and the console. */
    outsideGuestMs: median(cycles.map((c) => c.presentMs - c.guestDiskMs)),
    delReplyMs: of("delReplyMs"),
    goneMs: of("goneMs"),
    deletedEventMs: of("deletedEventMs"),
    cycles,
  };
}
export type HotPlugSummary = ReturnType<typeof summarise>;

/**
 * Rounds of one boot per VMM, alternating, so both meet the same load. A
 * round that fails runs once more (the emulator under L1 now and then
 * stalls an L2 guest under either VMM: test/nested/README.md); its first
 * error is kept with the figures.
 */
export async function q35HotPlugFigures(
  vmmBin: string,
  files: Q35Files,
  options: { rounds: number; cycles: number },
  scratch: string,
  log: (line: string) => void,
) {
  const hotDisk = path.join(scratch, "q35-hot.img");
  writeFileSync(hotDisk, Buffer.alloc(8 * MIB, 0x5a));
  const vmms = [virgaQ35(vmmBin), qemuQ35];
  const cycles = { virga: [] as PlugCycle[], qemu: [] as PlugCycle[] };
  const firstErrors: Record<string, string> = {};
  for (let i = 0; i < options.rounds; i++) {
    for (const vmm of vmms) {
      let round: PlugCycle[];
      try {
        round = await hotPlugRound(vmm, files, hotDisk, options.cycles, scratch);
      } catch (error) {
        const first = error instanceof Error ? error.message : String(error);
        log(`${vmm.key}: q35 hot-plug round ${i + 1} failed; running it once more:\n${first}`);
        firstErrors[vmm.key] ??= first;
        round = await hotPlugRound(vmm, files, hotDisk, options.cycles, scratch);
      }
      cycles[vmm.key].push(...round);
      for (const c of round)
        log(
          `q35 hot-plug round ${i + 1}, ${vmm.key}: device_add -> vdb ${c.presentMs.toFixed(0)} ms ` +
            `(guest: button -> slot up ${c.guestSlotUpMs.toFixed(0)} ms, -> vdb ${c.guestDiskMs.toFixed(0)} ms); ` +
            `device_del -> vdb gone ${c.goneMs.toFixed(0)} ms, -> DEVICE_DELETED ${c.deletedEventMs.toFixed(0)} ms; ` +
            `the guest's log of the plug:\n  ${c.guestLog.join("\n  ")}`,
        );
    }
  }
  return {
    rounds: options.rounds,
    cyclesPerBoot: options.cycles,
    virga: summarise(cycles.virga),
    qemu: summarise(cycles.qemu),
    ...(Object.keys(firstErrors).length === 0 ? {} : { firstAttemptErrors: firstErrors }),
  };
}

/** The q35 section's figures as linux.json holds them. */
export interface Q35Figures {
  smp: number;
  memMiB: number;
  boot: Awaited<ReturnType<typeof q35BootFigures>>;
  hotplug: Awaited<ReturnType<typeof q35HotPlugFigures>>;
}
