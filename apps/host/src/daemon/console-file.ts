// The console's bytes on disk, so a restarted virgad still has the boot log.
// One append-only file per VM directory named console.<base>.log, where
// <base> is the absolute offset of its first byte. When it grows past
// maxBytes it is replaced by a new file holding only the recent tail (given
// by the caller from memory); the base in the name keeps offsets stable
// across the swap, and a crash in the middle leaves at worst two files, of
// which the one with the larger base wins.
import { closeSync, openSync, readdirSync, readSync, statSync, unlinkSync } from "node:fs";
import { open, unlink, writeFile, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { messageOf } from "./errors";

const NAME = /^console\.(\d+)\.log$/;

export interface ConsoleFileContents {
  base: number;
  /** The file's last `tailBytes` bytes (or all of it). */
  tail: Buffer;
  /** Absolute offset just past the last byte in the file. */
  end: number;
}

/** The console files in `dir`, newest (largest base) first. */
export function consoleFiles(dir: string): { name: string; base: number }[] {
  return readdirSync(dir)
    .map((name) => ({ name, match: NAME.exec(name) }))
    .filter((entry) => entry.match !== null)
    .map((entry) => ({ name: entry.name, base: Number(entry.match?.[1]) }))
    .sort((a, b) => b.base - a.base);
}

export class ConsoleFile {
  private chain: Promise<void> = Promise.resolve();
  private handle: FileHandle | null = null;
  private size: number;
  private failed = false;

  private constructor(
    private readonly dir: string,
    private base: number,
    size: number,
    private readonly maxBytes: number,
    private readonly log: (line: string) => void,
  ) {
    this.size = size;
  }

  /** Reads what an earlier run kept and opens the file for appending. */
  static open(
    dir: string,
    options: { tailBytes: number; maxBytes: number; log: (line: string) => void },
  ): { file: ConsoleFile; contents: ConsoleFileContents } {
    const found = consoleFiles(dir);
    for (const stale of found.slice(1)) unlinkSync(path.join(dir, stale.name));
    const newest = found[0];
    if (newest === undefined) {
      return {
        file: new ConsoleFile(dir, 0, 0, options.maxBytes, options.log),
        contents: { base: 0, tail: Buffer.alloc(0), end: 0 },
      };
    }
    const file = path.join(dir, newest.name);
    const size = statSync(file).size;
    const length = Math.min(size, options.tailBytes);
    const tail = Buffer.alloc(length);
    const fd = openSync(file, "r");
    try {
      let done = 0;
      while (done < length) {
        const n = readSync(fd, tail, done, length - done, size - length + done);
        if (n === 0) break;
        done += n;
      }
    } finally {
      closeSync(fd);
    }
    return {
      file: new ConsoleFile(dir, newest.base, size, options.maxBytes, options.log),
      contents: { base: newest.base, tail, end: newest.base + size },
    };
  }

  private pathFor(base: number): string {
    return path.join(this.dir, `console.${base}.log`);
  }

  /**
   * Appends bytes (in order, without waiting). `recent` is called only when
   * the file must be compacted: it returns the bytes to keep and their
   * absolute offset, which must end exactly after `chunk`.
   */
  append(chunk: Buffer, recent: () => { offset: number; data: Buffer }): void {
    this.size += chunk.length;
    this.enqueue(async () => {
      this.handle ??= await open(this.pathFor(this.base), "a", 0o600);
      await this.handle.appendFile(chunk);
    });
    if (this.size > this.maxBytes) {
      const keep = recent();
      const oldBase = this.base;
      this.base = keep.offset;
      this.size = keep.data.length;
      this.enqueue(async () => {
        await this.handle?.close();
        this.handle = null;
        await writeFile(this.pathFor(keep.offset), keep.data, { mode: 0o600 });
        if (keep.offset !== oldBase) await unlink(this.pathFor(oldBase));
      });
    }
  }

  /** Resolves once everything appended so far is written. */
  async flush(): Promise<void> {
    await this.chain;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.handle?.close();
    this.handle = null;
  }

  /** Removes the file (the VM is being deleted). */
  async remove(): Promise<void> {
    await this.close();
    await unlink(this.pathFor(this.base)).catch(() => undefined);
  }

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((error: unknown) => {
      // A full disk must not take the console down: memory still has it.
      if (!this.failed) this.log(`console log ${this.dir}: ${messageOf(error)}`);
      this.failed = true;
    });
  }
}
