// What /proc says about a VM process. virgad re-attaches only to a pid that
// is alive and is the virga-vmm of that very VM directory (its command line
// names the VM's QMP socket), never to an unrelated process that reused
// the pid.
import { readFileSync } from "node:fs";
import { open } from "node:fs/promises";

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": comm may hold spaces or parens, the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The process's argv, or null when it is gone. */
export function commandLine(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter((arg) => arg !== "");
  } catch {
    return null;
  }
}

/** Is `pid` a virga-vmm serving the QMP socket at `qmpSocket`? */
export function isVmmFor(pid: number, qmpSocket: string): boolean {
  const argv = commandLine(pid);
  if (argv === null || !isAlive(pid)) return false;
  const isVmm = argv.some((arg) => /(^|\/)virga-vmm(\.js)?$/.test(arg));
  return isVmm && argv.some((arg) => arg.includes(qmpSocket));
}

/** Resident memory in bytes, or null. */
export function rssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

export interface LoggedExit {
  code: number | null;
  error: string | null;
}

/** The last `bytes` of a file as text ("" when missing). */
export async function readTail(file: string, bytes: number): Promise<string> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch {
    return "";
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer.toString("utf8");
  } finally {
    await handle.close();
  }
}

/**
 * What the VMM's own log says about how process `pid` ended: virga-vmm logs
 * "exit <code>" last and "error: <reason>" before a failure. A process
 * killed by a signal logs neither.
 */
export async function exitFromLog(logFile: string, pid: number): Promise<LoggedExit> {
  const text = await readTail(logFile, 64 * 1024);
  let code: number | null = null;
  let error: string | null = null;
  const prefix = `virga-vmm[${pid}]: `;
  for (const line of text.split("\n")) {
    const at = line.indexOf(prefix);
    if (at < 0) continue;
    const message = line.slice(at + prefix.length);
    const exit = /^exit (\d+)$/.exec(message);
    if (exit !== null) code = Number(exit[1]);
    if (message.startsWith("error: ")) error = message.slice(7);
  }
  return { code, error };
}
