// Drives the guest's side of the device scenarios: `virga-scenario` typed
// on the console of a Debian guest booted with virga.action=stay
// (test/images/guest-scenario.sh). Each command ends with one line,
// "VIRGA-GUEST <command> key=value ..." or "VIRGA-GUEST error <command>: why".

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
