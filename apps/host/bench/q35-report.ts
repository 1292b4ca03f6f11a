// The q35 section's table for `npm run bench linux`, printed on the host
// from the figures L1 wrote (q35-in-l1.ts measures them).
import { printTable } from "./measure";
import type { HotPlugSummary, Q35Figures } from "./q35-in-l1";

export function printQ35(f: Q35Figures): void {
  const { boot, hotplug } = f;
  const row = (label: string, v: number | undefined, q: number | undefined): string[] => [
    label,
    v === undefined ? "-" : v.toFixed(0),
    q === undefined ? "-" : q.toFixed(0),
    v !== undefined && q ? (v / q).toFixed(2) : "",
  ];
  const a = boot.virgaAccounting;
  console.log(
    `q35 (${f.smp} vCPU(s), ${f.memMiB} MiB, direct kernel boot; root port 1 empty, a virtio-blk-pci disk in ` +
      `root port 2; QEMU -M ${boot.qemuMachine}, its firmware SeaBIOS loading the kernel): boot medians of ` +
      `${boot.runs} alternating runs, virga-vmm's share from ${boot.runs} more boots to power-off (-D log); ` +
      `hot-plug medians of ${hotplug.virga.cycles.length} plug/unplug cycles per VMM ` +
      `(${hotplug.rounds} boots each, alternating) into root port 1:`,
  );
  const plug = (label: string, pick: (s: HotPlugSummary) => number): string[] =>
    row(label, pick(hotplug.virga), pick(hotplug.qemu));
  printTable([
    ["", "virga-vmm", "qemu q35", "ratio"],
    row("boot: process start -> VIRGA-GUEST ready (ms)", boot.virga.medianMs, boot.qemu.medianMs),
    row("  virga-vmm: start -> first guest entry (ms)", a.startToFirstEntryMs, undefined),
    row("  virga-vmm: exits handled, to power-off", a.exits, undefined),
    row("  virga-vmm: time handling them (ms)", a.exitHandlingMs, undefined),
    row("  inside KVM_RUN before ready, at least (ms)", a.runBeforeReadyMs, undefined),
    plug("device_add -> reply (ms)", (s) => s.addReplyMs),
    plug("device_add -> /sys/block/vdb in the guest (ms)", (s) => s.presentMs),
    plug("  guest clock: pciehp button -> slot up (ms)", (s) => s.guestSlotUpMs),
    plug("  guest clock: pciehp button -> [vdb] (ms)", (s) => s.guestDiskMs),
    plug("  the rest: request, interrupt, loop, console (ms)", (s) => s.outsideGuestMs),
    plug("device_del -> reply (ms)", (s) => s.delReplyMs),
    plug("device_del -> vdb gone in the guest (ms)", (s) => s.goneMs),
    plug("device_del -> DEVICE_DELETED (ms)", (s) => s.deletedEventMs),
  ]);
  for (const [key, error] of Object.entries(hotplug.firstAttemptErrors ?? {}))
    console.log(`${key}: a hot-plug round failed and ran once more; its first error:\n${error}`);
}
