// A text console over any byte stream (the VM's stdout, a pty, a unix
// socket): collects everything, waits for patterns, sends lines.
import type { Readable, Writable } from "node:stream";

export class SerialConsole {
  /** Everything received so far. */
  text = "";
  /** waitFor() searches from here and moves it past each match. */
  private cursor = 0;
  private readonly listeners = new Set<() => void>();
  private output: Writable | null = null;

  attach(input: Readable, output?: Writable): void {
    input.setEncoding("utf8");
    input.on("data", (chunk: string) => {
      this.text += chunk;
      for (const listener of this.listeners) listener();
    });
    input.on("error", () => undefined);
    if (output !== undefined) this.output = output;
  }

  /** Waits until `pattern` appears after the previous match; returns the match. */
  async waitFor(pattern: RegExp, timeoutMs = 30000): Promise<RegExpExecArray> {
    const find = (): RegExpExecArray | null => {
      const re = new RegExp(pattern.source, pattern.flags.replace("g", ""));
      const match = re.exec(this.text.slice(this.cursor));
      if (match === null) return null;
      this.cursor += match.index + match[0].length;
      return match;
    };
    const now = find();
    if (now !== null) return now;
    return new Promise((resolve, reject) => {
      const listener = (): void => {
        const match = find();
        if (match !== null) {
          this.listeners.delete(listener);
          clearTimeout(timer);
          resolve(match);
        }
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${String(pattern)}`));
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }

  /** All lines matching pattern received so far. */
  lines(pattern: RegExp): string[] {
    return this.text.split(/\r?\n/).filter((line) => pattern.test(line));
  }

  /** Sends one shell line (the probe guest reads lines ending in \n). */
  send(line: string): void {
    if (this.output === null) throw new Error("this console has no input side");
    this.output.write(line + "\n");
  }
}
