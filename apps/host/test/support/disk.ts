// Temporary directories and disk images for host tests.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export const SECTOR = 512;

/** A temporary directory removed by cleanup(). */
export function tempDir(prefix = "virga-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    dir,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A zero-filled raw disk image of `bytes` in dir. */
export function makeDisk(dir: string, name = "disk.img", bytes = 1024 * 1024): string {
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.alloc(bytes));
  return file;
}

/** The probe guest's sector pattern (docs/probe-guest.md): byte i = (i*7 + s*13 + k) & 0xff. */
export function sectorPattern(sector: number, seed: number): Buffer {
  const buf = Buffer.alloc(SECTOR);
  for (let i = 0; i < SECTOR; i++) buf[i] = (i * 7 + sector * 13 + seed) & 0xff;
  return buf;
}

export function readSector(file: string, sector: number): Buffer {
  return readFileSync(file).subarray(sector * SECTOR, (sector + 1) * SECTOR);
}
