// Integration-test harness: runs a real virga-vmm process, exposes its
// serial console, stderr and exit, and always kills it at the end. On a
// failure the VM's serial output and stderr are appended to the error, so
// the test report shows what the guest did.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { QmpClient } from "../../src/qmp/client";
import { SerialConsole } from "./console";
import { nativeAddon, probeGuest, repoRoot, vmmBin } from "./paths";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Throws, with the reason, when this host cannot run KVM tests (they fail, never skip). */
export function requireKvmHost(): void {
  if (!existsSync("/dev/kvm")) throw new Error("/dev/kvm not present: host tests need KVM");
  if (!existsSync(vmmBin)) throw new Error(`virga-vmm not built: ${vmmBin} (npm install)`);
  if (!existsSync(nativeAddon))
    throw new Error(`native addon not built: ${nativeAddon} (npm install)`);
  if (!existsSync(probeGuest))
    throw new Error(`probe guest not built: ${probeGuest} (npm install)`);
}

export interface VmmOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  command?: string;
}

export class VmmProcess {
  readonly child: ChildProcess;
  /** The serial console when -serial stdio (the default); otherwise stdout. */
  readonly serial = new SerialConsole();
  stderr = "";
  readonly exit: Promise<Exit>;
  private exited: Exit | null = null;
  /** Other consoles (pty, socket) the test opened, for the transcript. */
  readonly extraConsoles: { label: string; console: SerialConsole }[] = [];

  /** The executable: virga-vmm unless a test runs another VMM beside it (QEMU). */
  readonly command: string;

  constructor(
    readonly args: readonly string[],
    options: VmmOptions = {},
  ) {
    this.command = options.command ?? vmmBin;
    this.child = spawn(this.command, [...args], {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    if (this.child.stdout === null || this.child.stdin === null || this.child.stderr === null) {
      throw new Error("spawn without pipes");
    }
    this.serial.attach(this.child.stdout, this.child.stdin);
    this.child.stdin.on("error", () => undefined);
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk: string) => (this.stderr += chunk));
    this.exit = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      });
    });
  }

  get running(): boolean {
    return this.exited === null;
  }

  /** Waits for a pattern on the serial console (stdio). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray> {
    return this.serial.waitFor(pattern, timeoutMs);
  }

  send(line: string): void {
    this.serial.send(line);
  }

  /** Waits for a pattern on stderr. */
  async waitForStderr(pattern: RegExp, timeoutMs = 30000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.stderr);
      if (match !== null) return match;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${String(pattern)} on stderr`);
      if (!this.running)
        throw new Error(`virga-vmm exited before ${String(pattern)} appeared on stderr`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resolves with the exit once the process ends, or rejects after timeoutMs. */
  async waitForExit(timeoutMs = 30000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`virga-vmm still running after ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGKILL");
    await this.exit;
  }

  transcript(): string {
    const parts = [
      `${path.basename(this.command)} ${this.args.join(" ")}`,
      `--- exit: ${this.exited === null ? "still running (killed)" : JSON.stringify(this.exited)}`,
      `--- serial/stdout:\n${this.serial.text}`,
      `--- stderr:\n${this.stderr}`,
    ];
    for (const extra of this.extraConsoles)
      parts.push(`--- ${extra.label}:\n${extra.console.text}`);
    return parts.join("\n");
  }
}

let stillRunningReporter: ((pid: number) => string) | null = null;

/**
 * Adds what `report` says about a VMM still running when its test failed
 * (taken before the kill) to the error; the nested harness uses it.
 */
export function reportStillRunningVmms(report: (pid: number) => string): void {
  stillRunningReporter = report;
}

/**
 * Runs body against a fresh virga-vmm. The VM is killed afterwards whatever
 * happens; when body throws, the VM's transcript is added to the error.
 */
export async function withVmm<T>(
  args: readonly string[],
  body: (vm: VmmProcess) => Promise<T>,
  options?: VmmOptions,
): Promise<T> {
  const vm = new VmmProcess(args, options);
  try {
    return await body(vm);
  } catch (error) {
    let transcript = vm.transcript();
    if (vm.running && stillRunningReporter !== null && vm.child.pid !== undefined)
      transcript += `\n${stillRunningReporter(vm.child.pid)}`;
    if (error instanceof Error) {
      error.message += `\n${transcript}`;
      throw error;
    }
    throw new Error(`${String(error)}\n${transcript}`);
  } finally {
    await vm.kill();
  }
}

/** The probe guest's standard flags: the ELF, a small RAM, -smp n. */
export function probeArgs(
  options: { smp?: string; memory?: string; append?: string } = {},
): string[] {
  return [
    "-machine",
    "microvm",
    "-kernel",
    probeGuest,
    "-smp",
    options.smp ?? "1",
    "-m",
    options.memory ?? "128",
    "-append",
    options.append ?? "console=ttyS0",
  ];
}

/** Waits until `file` exists (a socket the VMM creates); fails early if the VM has exited. */
export async function waitForPath(file: string, vm?: VmmProcess, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    if (vm !== undefined && !vm.running)
      throw new Error(`virga-vmm exited before ${file} appeared`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Connects a QmpClient, retrying while the VMM is still starting its QMP server. */
export async function connectQmp(
  socketPath: string,
  vm?: VmmProcess,
  timeoutMs = 10000,
): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await QmpClient.connect(socketPath);
    } catch (error) {
      if (Date.now() > deadline || (vm !== undefined && !vm.running)) throw error;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
