// Drives the guest's side of the device scenarios: `virga-scenario` typed
// on the console of a Debian guest booted with virga.action=stay
// (test/images/guest-scenario.sh). Each command ends with one line,
// "VIRGA-GUEST <command> key=value ..." or "VIRGA-GUEST error <command>: why".
import type { QmpClient } from "../../src/qmp/client";
import type { SerialConsole } from "../support/console";
import { connectQmp, type VmmProcess } from "../support/guest";

const BOOT_MS = 120000;

/** A guest console: VmmProcess, or a SerialConsole over another VMM's stdio. */
export interface GuestConsole {
  send(line: string): void;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Types `virga-scenario <command>` without waiting for its end. */
export function sendScenario(console: GuestConsole, command: string): void {
  console.send(`virga-scenario ${command}`);
}

// `write` keeps the word its marker has always had (test/images/README.md).
const DONE_WORD: Record<string, string> = { write: "wrote" };

/** Waits for the end line of the command named `name`; a guest error throws. */
export async function scenarioResult(
  console: GuestConsole,
  name: string,
  timeoutMs = 60000,
): Promise<string> {
  const n = escape(name);
  const done = escape(DONE_WORD[name] ?? name);
  // The typed command's echo never holds "VIRGA-GUEST", so it cannot match;
  // the line end is part of the pattern, as output arrives in pieces.
  const match = await console.waitFor(
    new RegExp(`VIRGA-GUEST (?:${done} ([^\\r\\n]*)|error ${n}: ([^\\r\\n]*))\\r?\\n`),
    timeoutMs,
  );
  if (match[2] !== undefined) throw new Error(`guest: virga-scenario ${name}: ${match[2]}`);
  return match[1] ?? "";
}

/** Runs one guest command and returns its end line after the command name. */
export async function guestScenario(
  console: GuestConsole,
  command: string,
  timeoutMs = 60000,
): Promise<string> {
  sendScenario(console, command);
  return scenarioResult(console, command.split(" ")[0] ?? command, timeoutMs);
}

/** The key=value fields of a result line ("bytes=1 MB/s=2.5" → {bytes: "1", "MB/s": "2.5"}). */
export function fields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const token of line.trim().split(/\s+/)) {
    const eq = token.indexOf("=");
    if (eq > 0) out[token.slice(0, eq)] = token.slice(eq + 1);
  }
  return out;
}

/** A numeric field, or an error naming the field and the line. */
export function numberField(line: string, key: string): number {
  const value = Number(fields(line)[key]);
  if (!Number.isFinite(value)) throw new Error(`no number '${key}=' in: ${line}`);
  return value;
}

/** Waits for the guest's shell (virga.action=stay), then connects to its QMP socket. */
export async function bootShell(
  vm: VmmProcess,
  qmpSocket: string,
  // The first client starts the VMM's control plane, which takes longer on a busy L1.
  qmpTimeoutMs = 10000,
): Promise<QmpClient> {
  // A VMM that refuses a flag ends at once: say so rather than wait out the boot.
  const ended = vm.exit.then((exit) => {
    throw new Error(`the VMM exited (${JSON.stringify(exit)}) before the guest's shell came up`);
  });
  ended.catch(() => undefined);
  await Promise.race([vm.waitFor(/VIRGA-GUEST action=stay/, BOOT_MS), ended]);
  const qmp = await connectQmp(qmpSocket, vm, qmpTimeoutMs);
  await qmp.execute("qmp_capabilities");
  return qmp;
}

export interface Tick {
  n: number;
  /** The guest's uptime when it printed the line. */
  uptime: number;
  /** performance.now() when this side first saw the line. */
  seenAt: number;
}

/**
 * The lines of `virga-scenario ticker` on one console, each with when it
 * arrived. Read from the whole text rather than with waitFor, whose cursor
 * the scenario's other waits move past the ticks.
 */
export class TickWatch {
  readonly ticks = new Map<number, Tick>();
  private readonly timer: NodeJS.Timeout;
  private scanned = 0;

  constructor(private readonly serial: SerialConsole) {
    this.timer = setInterval(() => {
      this.scan();
    }, 2);
  }

  private scan(): void {
    // Complete lines only ("VIRGA-TICK 1" may still become "VIRGA-TICK 12"),
    // from where the last scan ended: L1's TCG makes every scan count.
    const end = this.serial.text.lastIndexOf("\n") + 1;
    if (end <= this.scanned) return;
    const text = this.serial.text.slice(this.scanned, end);
    this.scanned = end;
    for (const match of text.matchAll(/^VIRGA-TICK (\d+) uptime=([\d.]+)\r?$/gm)) {
      const n = Number(match[1]);
      if (!this.ticks.has(n))
        this.ticks.set(n, { n, uptime: Number(match[2]), seenAt: performance.now() });
    }
  }

  /** The highest tick so far, or undefined. */
  last(): Tick | undefined {
    this.scan();
    let last: Tick | undefined;
    for (const tick of this.ticks.values()) if (last === undefined || tick.n > last.n) last = tick;
    return last;
  }

  /**
   * The longest and shortest waits between consecutive ticks numbered from
   * `from` on: by the guest's clock (s) and as seen here (ms, the longest).
   */
  slowestInterval(from = 0): { uptime: number; seenAt: number; fastest: number } {
    this.scan();
    let uptime = 0;
    let seenAt = 0;
    let fastest = Infinity;
    for (const tick of this.ticks.values()) {
      const previous = this.ticks.get(tick.n - 1);
      if (previous === undefined || previous.n < from) continue;
      const interval = tick.uptime - previous.uptime;
      uptime = Math.max(uptime, interval);
      fastest = Math.min(fastest, interval);
      seenAt = Math.max(seenAt, tick.seenAt - previous.seenAt);
    }
    return { uptime, seenAt, fastest };
  }

  /** Waits until a tick numbered at least `n` has arrived. */
  async waitFor(n: number, timeoutMs: number): Promise<Tick> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last = this.last();
      if (last !== undefined && last.n >= n) return last;
      if (Date.now() > deadline)
        throw new Error(
          // Worded as every other wait is, so a guest the emulator's fault
          // stalled gets its one more run (in-l1.ts, isHarnessFault).
          `timed out after ${timeoutMs} ms waiting for VIRGA-TICK ${n} (last: ${last === undefined ? "none" : last.n})`,
        );
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
