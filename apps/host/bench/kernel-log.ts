// The guest kernel's log as `dmesg` prints it, read for the hot-plug
// figures of `npm run bench linux -- --section q35`: when pciehp saw the
// slot's button, when it brought the slot up, when the disk registered, by
// the guest's own clock.

export interface KernelLogLine {
  /** Seconds since the guest booted (printk's timestamp). */
  at: number;
  message: string;
}

// busybox strips the "<level>" prefix; a raw read (dmesg -r) keeps it.
const LINE = /^(?:<\d+>)?\[\s*(\d+\.\d+)\]\s?(.*)$/;

/** The timestamped lines of `dmesg` output; anything else (the shell's echo, prompts) is skipped. */
export function parseKernelLog(text: string): KernelLogLine[] {
  const lines: KernelLogLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const match = LINE.exec(raw.trim());
    if (match === null) continue;
    lines.push({ at: Number(match[1]), message: match[2] ?? "" });
  }
  return lines;
}

/** A hot-plugged disk's way into the guest, in seconds from pciehp's first word about it. */
export interface PlugTimeline {
  /** "Attention button pressed" (the VMM's interrupt reached pciehp) → "Card present" or "Link Up". */
  slotUpS: number;
  /** "Attention button pressed" → the virtio_blk driver's "[<disk>]" line. */
  diskS: number;
}

/**
 * Where a plug went inside the guest, from the log of that plug alone (the
 * bench clears the log before each device_add). Throws naming the line it
 * could not find, with the log, so a change in the kernel's wording shows.
 */
export function plugTimeline(lines: KernelLogLine[], disk: string): PlugTimeline {
  const find = (what: string, test: (message: string) => boolean): number => {
    const line = lines.find((l) => test(l.message));
    if (line === undefined)
      throw new Error(
        `the guest's kernel log has no ${what} line:\n${lines.map((l) => `[${l.at}] ${l.message}`).join("\n")}`,
      );
    return line.at;
  };
  const button = find("pciehp 'Attention button pressed'", (m) =>
    /pciehp: Slot\(\S+\): Attention button pressed/.test(m),
  );
  const slotUp = find("pciehp 'Card present' or 'Link Up'", (m) =>
    /pciehp: Slot\(\S+\): (Card present|Link Up)/.test(m),
  );
  const registered = find(`virtio_blk '[${disk}]'`, (m) =>
    new RegExp(`virtio_blk \\S+: \\[${disk}\\]`).test(m),
  );
  return { slotUpS: slotUp - button, diskS: registered - button };
}
