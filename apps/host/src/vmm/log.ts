// The VMM log (-D): timestamped lines to a file, to stderr (-D without a
// file), or nowhere. Writes are synchronous: lines are rare and must not be
// lost when the process exits right after.
import { closeSync, openSync, writeSync } from "node:fs";

export interface Logger {
  log(line: string): void;
  close(): void;
}

/** `pid`: the VM process the lines are about (the control plane may serve several). */
export function createLogger(target: string | null | undefined, pid = process.pid): Logger {
  if (target === undefined) return { log: () => undefined, close: () => undefined };
  const fd = target === null ? 2 : openSync(target, "a", 0o640);
  return {
    log(line) {
      try {
        writeSync(fd, `${new Date().toISOString()} virga-vmm[${pid}]: ${line}\n`);
      } catch {
        // a full disk or a closed stderr must not take the VM down
      }
    },
    close() {
      if (fd !== 2) closeSync(fd);
    },
  };
}
