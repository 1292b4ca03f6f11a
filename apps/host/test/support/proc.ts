// What /proc says about test processes.
import { readFileSync } from "node:fs";

/** The direct children of `pid` (a VM's companion control plane), [] when gone. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
