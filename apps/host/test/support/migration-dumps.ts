// Compares what the two ends of a live migration wrote with
// VIRGA_MIGRATION_DUMP (docs/migration.md): the source once paused with
// its last pages sent, the destination with the state loaded and before its
// vCPUs first run. Every page and every register must match, except what
// moves on by itself or KVM itself writes on the way (listed below).
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

// Registers the comparison leaves out (docs/migration.md): those that move
// between the source's save and the destination's readback (the TSC, the
// TSC adjust KVM derives from it, the deadline rebased on the
// destination's TSC, Hyper-V's reference time and VP runtime); AMD's
// SYSENTER_ESP, of which KVM keeps only the low half when the host sets it
// (64-bit guests on AMD never use SYSENTER); and the LAPIC's PPR, derived
// from TPR and ISR, which KVM 6.1 recomputes on KVM_SET_LAPIC before it
// recounts the in-service vectors, so it reads as the TPR alone until the
// next update (the delivery decisions recompute it).
const LEFT_OUT = new Set([
  "msr0x10",
  "msr0x3b",
  "msr0x6e0",
  "msr0x40000010",
  "msr0x40000020",
  "msr0x175",
  "lapic+0xa0",
]);

export interface MigrationDumpDifferences {
  /** Guest-physical addresses of the pages whose contents differ. */
  pages: number[];
  /** "vcpu N: source '<line>' destination '<line>'" for each register that differs. */
  registers: string[];
  /** Each vCPU's privilege level at the source's pause: "user" or "kernel". */
  modes: string[];
}

function registerLines(file: string): Map<string, string> {
  const out = new Map<string, string>();
  let vcpu = "";
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line.startsWith("vcpu ")) vcpu = line;
    out.set(`${vcpu}|${line.split(" ")[0] ?? ""}`, line);
  }
  return out;
}

/** The pages that hold a kvmclock wall-clock structure (MSRs 0x11 and 0x4b564d00). */
function wallClockPages(registers: Map<string, string>): Set<number> {
  const out = new Set<number>();
  for (const line of registers.values()) {
    const match = /^msr0x(?:11|4b564d00) 0x([0-9a-f]+)$/.exec(line);
    if (match !== null) out.add(Math.floor(parseInt(match[1] ?? "0", 16) / 4096) * 4096);
  }
  return out;
}

/** The dumps of source process `sourcePid` and destination process `destPid` in `dir`, compared. */
export function compareMigrationDumps(
  dir: string,
  sourcePid: number,
  destPid: number,
): MigrationDumpDifferences {
  const file = (role: string, pid: number, ext: string): string => {
    const name = path.join(dir, `${role}-${pid}.${ext}`);
    if (!existsSync(name)) throw new Error(`no migration dump ${name}`);
    return name;
  };
  const source = registerLines(file("source", sourcePid, "vcpus"));
  const dest = registerLines(file("destination", destPid, "vcpus"));
  const registers: string[] = [];
  const modes: string[] = [];
  for (const [key, line] of source) {
    const [vcpu = "", name = ""] = key.split("|");
    if (name === "cs")
      modes.push((parseInt(line.split("sel=")[1] ?? "0", 16) & 3) === 3 ? "user" : "kernel");
    if (LEFT_OUT.has(name)) continue;
    const other = dest.get(key);
    if (other !== line)
      registers.push(`${vcpu}: source '${line}' destination '${other ?? "(none)"}'`);
  }
  // KVM writes the wall clock into guest RAM when the destination restores its MSR.
  const wallClock = wallClockPages(source);
  const a = readFileSync(file("source", sourcePid, "pages"));
  const b = readFileSync(file("destination", destPid, "pages"));
  if (a.length !== b.length)
    throw new Error(`the two ends hashed ${a.length / 8} and ${b.length / 8} pages`);
  const pages: number[] = [];
  for (let i = 0; i < a.length; i += 8) {
    const gpa = (i / 8) * 4096;
    if (a.readBigUInt64LE(i) !== b.readBigUInt64LE(i) && !wallClock.has(gpa)) pages.push(gpa);
  }
  return { pages, registers, modes };
}

/** A line for a test's output: what differed, or that nothing did. */
export function describeDifferences(d: MigrationDumpDifferences): string {
  const pages = d.pages.slice(0, 16).map((gpa) => `0x${gpa.toString(16)}`);
  return (
    `vCPUs at the pause: ${d.modes.join(",")}; ${d.pages.length} pages differ` +
    (pages.length > 0 ? ` (${pages.join(" ")})` : "") +
    `; ${d.registers.length} registers differ` +
    (d.registers.length > 0 ? `:\n  ${d.registers.slice(0, 40).join("\n  ")}` : "")
  );
}
