// A VMM process for the benches, its serial console on stdio: what it
// printed, typing into it, waiting for a marker, ending it; and its QMP
// socket once it listens.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { QmpClient } from "../src/qmp/client";

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Spawns a VMM; `waitFor` resolves when its output has `marker`. */
export class Vmm {
  readonly child: ChildProcess;
  output = "";
  readonly spawnedAt = performance.now();
  readonly name: string;
  stderr = "";
  private exitedWith: string | null = null;

  constructor(bin: string, args: string[]) {
    this.name = path.basename(bin);
    this.child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout?.on("data", (d: Buffer) => (this.output += d.toString()));
    this.child.stderr?.on("data", (d: Buffer) => (this.stderr += d.toString()));
    // Typing into a VMM that exited is reported by waitFor, not as a crash here.
    this.child.stdin?.on("error", () => undefined);
    this.child.on("exit", (code) => {
      this.exitedWith = `exited (${code}): ${this.stderr.trim()}`;
    });
  }

  type(text: string): void {
    this.child.stdin?.write(text);
  }

  /** `poke` runs before each look at the output (typing a key, say). */
  async waitFor(marker: string, timeoutMs = 30000, poke?: () => void): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes(marker)) {
      if (this.exitedWith !== null) throw new Error(`${this.name} ${this.exitedWith}`);
      if (Date.now() > deadline)
        throw new Error(`${this.name}: no '${marker}' within ${timeoutMs} ms`);
      poke?.();
      await sleep(1);
    }
    return performance.now();
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill(signal);
    await exited;
  }
}

export async function waitForFile(file: string, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear`);
    await sleep(1);
  }
}

/** The socket file exists from bind(); connecting before listen() is refused, so retry. */
export async function connectWhenListening(socket: string, timeoutMs = 30000): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await QmpClient.connect(socket);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ECONNREFUSED" || Date.now() > deadline) {
        throw error;
      }
      await sleep(1);
    }
  }
}

/**
 * Where a process's threads' time went so far, from each one's schedstat
 * (ms): on a CPU, and runnable but waiting for one.
 */
export function schedTimes(pid: number): { cpuMs: number; waitMs: number } {
  let cpuNs = 0;
  let waitNs = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ");
    cpuNs += Number(run);
    waitNs += Number(wait);
  }
  return { cpuMs: cpuNs / 1e6, waitMs: waitNs / 1e6 };
}
