// -pidfile: written once the VM exists, removed on exit if still ours.
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";

export function writePidfile(path: string): void {
  writeFileSync(path, `${process.pid}\n`, { mode: 0o644 });
}

export function removePidfile(path: string): void {
  try {
    if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
  } catch {
    // already gone
  }
}
