// Integration-test harness for virgad: runs the real `virgad` (bin/virgad.js)
// on a temporary run directory, gives tRPC clients (HTTP with the token,
// websockets for subscriptions) and console/event collectors, and on
// teardown kills every virgad and every VM it started (VMs are detached: they
// would outlive the test otherwise). On a failure the virgad stderr, each
// VM's log and console are added to the error.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
} from "node:fs";
import path from "node:path";
import {
  TRPCClientError,
  createTRPCClient,
  createWSClient,
  httpLink,
  splitLink,
  wsLink,
  type TRPCClient,
} from "@trpc/client";
import WebSocket from "ws";
import type { VmConfig } from "../../src/config/vm-config";
import type { AppRouter, ConsoleChunk, VmEvent } from "../../src/daemon/router";
import { tempDir } from "../support/disk";
import { hostDir, probeGuest, repoRoot } from "../support/paths";

export const virgadBin = path.join(hostDir, "bin", "virgad.js");

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitUntil(
  check: () => boolean,
  what: string,
  timeoutMs = 20000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** One running virgad process. */
export class VirgadProcess {
  stdout = "";
  stderr = "";
  port = 0;
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private readonly clients: { close(): void }[] = [];

  /** "https" when virgad serves TLS (beyond loopback, or --tls). */
  scheme = "http";

  constructor(
    readonly runDir: string,
    readonly imageDirs: readonly string[],
    listen = "127.0.0.1:0",
  ) {
    const args = [virgadBin, "--listen", listen, "--run-dir", runDir];
    for (const dir of imageDirs) args.push("--image-dir", dir);
    this.child = spawn(process.execPath, args, {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.setEncoding("utf8").on("data", (text: string) => (this.stdout += text));
    this.child.stderr?.setEncoding("utf8").on("data", (text: string) => (this.stderr += text));
    this.exited = new Promise((resolve) => {
      this.child.once("exit", () => {
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async ready(): Promise<this> {
    const listening = /listening on (https?):\/\/[^\s]*:(\d+) /;
    await waitUntil(() => listening.test(this.stdout) || !this.running, "virgad to listen");
    const match = listening.exec(this.stdout);
    if (match === null) throw new Error(`virgad did not start:\n${this.stderr}`);
    this.scheme = match[1] ?? "http";
    this.port = Number(match[2]);
    return this;
  }

  /** The token of scope "full". */
  get token(): string {
    return readFileSync(path.join(this.runDir, "token"), "utf8").trim();
  }

  /** The token of scope "read". */
  get readToken(): string {
    return readFileSync(path.join(this.runDir, "token.read"), "utf8").trim();
  }

  get url(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  /**
   * A tRPC client: queries and mutations over HTTP, subscriptions over one
   * websocket; the token goes in the Authorization header of both.
   */
  client(token = this.token): TRPCClient<AppRouter> {
    const headers = { authorization: `Bearer ${token}` };
    // tRPC constructs the socket with the URL only; the header rides on a subclass.
    class HeaderWebSocket extends WebSocket {
      constructor(url: string | URL) {
        super(url, { headers });
      }
    }
    const wsClient = createWSClient({
      url: `ws://127.0.0.1:${this.port}/trpc`,
      WebSocket: HeaderWebSocket as unknown as typeof globalThis.WebSocket,
      retryDelayMs: () => 100,
    });
    this.clients.push(wsClient);
    return createTRPCClient<AppRouter>({
      links: [
        splitLink({
          condition: (op) => op.type === "subscription",
          true: wsLink({ client: wsClient }),
          false: httpLink({ url: `${this.url}/trpc`, headers }),
        }),
      ],
    });
  }

  async kill9(): Promise<void> {
    this.closeClients();
    if (this.running) this.child.kill("SIGKILL");
    await this.exited;
  }

  async stop(): Promise<void> {
    this.closeClients();
    if (this.running) this.child.kill("SIGTERM");
    await Promise.race([this.exited, sleep(5000)]);
    if (this.running) this.child.kill("SIGKILL");
    await this.exited;
  }

  private closeClients(): void {
    for (const client of this.clients.splice(0)) client.close();
  }
}

/** A run directory, image directories and every virgad started on them. */
export class VirgadFixture {
  readonly tmp = tempDir("virgad-it-");
  readonly runDir = path.join(this.tmp.dir, "run");
  readonly imagesDir = path.join(this.tmp.dir, "images");
  /** The probe guest, copied into the image directory. */
  readonly kernel = path.join(this.imagesDir, "probe.elf");
  private readonly daemons: VirgadProcess[] = [];
  private readonly vmPids = new Set<number>();

  constructor() {
    mkdirSync(this.imagesDir, { recursive: true });
    copyFileSync(probeGuest, this.kernel);
  }

  private readonly runDirs = new Set<string>();

  /**
   * A virgad on the fixture's run directory, or on `runDir` (a second host;
   * same image directory), listening on `listen` (default 127.0.0.1:0).
   */
  async start(runDir = this.runDir, listen?: string): Promise<VirgadProcess> {
    this.runDirs.add(runDir);
    const daemon = new VirgadProcess(runDir, [this.imagesDir], listen);
    this.daemons.push(daemon);
    await daemon.ready();
    return daemon;
  }

  /** A probe-guest config in the daemon's input shape. */
  probeConfig(options: { cpus?: number; memoryMiB?: number } = {}) {
    const cpus = options.cpus ?? 1;
    return {
      kernel: this.kernel,
      append: "console=ttyS0",
      smp: { cpus, maxCpus: cpus, sockets: 1, cores: cpus, threads: 1 },
      memoryBytes: (options.memoryMiB ?? 64) * 1024 * 1024,
    };
  }

  /** Remembers a VM pid for teardown (the pid files are read too). */
  track(pid: number | null): void {
    if (pid !== null) this.vmPids.add(pid);
  }

  /** The VMs' pids and the control-plane host's (it outlives virgad, as they do). */
  private pidFiles(): number[] {
    const files: string[] = [];
    for (const runDir of this.runDirs) {
      const vms = path.join(runDir, "vms");
      if (existsSync(vms)) files.push(...readdirSync(vms).map((id) => path.join(vms, id, "pid")));
      files.push(path.join(runDir, "control-host.pid"));
    }
    return files
      .filter((file) => existsSync(file))
      .map((file) => Number(readFileSync(file, "utf8").trim()))
      .filter((pid) => pid > 0);
  }

  /** What the VMs and daemons said, for a failing test's report. */
  transcript(): string {
    const parts: string[] = [];
    for (const daemon of this.daemons) {
      parts.push(`--- virgad pid ${daemon.pid} stderr:\n${daemon.stderr}`);
    }
    for (const runDir of this.runDirs) {
      const where = path.relative(this.tmp.dir, runDir);
      const hostLog = path.join(runDir, "control-host.log");
      if (existsSync(hostLog)) {
        const text = readFileSync(hostLog, "utf8");
        parts.push(`--- ${where}/control-host.log (last 3000 chars):\n${text.slice(-3000)}`);
      }
      const vms = path.join(runDir, "vms");
      if (!existsSync(vms)) continue;
      for (const id of readdirSync(vms)) {
        const dir = path.join(vms, id);
        for (const name of readdirSync(dir)) {
          if (name === "log" || /^console\.\d+\.log$/.test(name)) {
            const text = readFileSync(path.join(dir, name), "utf8");
            parts.push(`--- ${where}/vms/${id}/${name} (last 3000 chars):\n${text.slice(-3000)}`);
          }
        }
      }
    }
    return parts.join("\n");
  }

  async cleanup(): Promise<void> {
    for (const daemon of this.daemons) await daemon.kill9();
    for (const pid of new Set([...this.vmPids, ...this.pidFiles()])) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await waitUntil(
      () => [...this.vmPids].every((pid) => !alive(pid)),
      "the VMs to die",
      5000,
    ).catch(() => undefined);
    this.tmp.cleanup();
  }
}

/** Runs body with a fixture; always cleans up, and adds the transcript to a failure. */
export async function withVirgad<T>(body: (fixture: VirgadFixture) => Promise<T>): Promise<T> {
  const fixture = new VirgadFixture();
  try {
    return await body(fixture);
  } catch (error) {
    const transcript = fixture.transcript();
    if (error instanceof Error) {
      error.message += `\n${transcript}`;
      throw error;
    }
    throw new Error(`${String(error)}\n${transcript}`);
  } finally {
    await fixture.cleanup();
  }
}

/** Asks the probe guest something on its console and waits for the answer after this point. */
export async function ask(
  client: ReturnType<VirgadProcess["client"]>,
  console: ConsoleWatcher,
  id: string,
  command: string,
  answer: RegExp,
): Promise<void> {
  const from = console.text.length;
  await client.vm.consoleInput.mutate({ id, data: `${command}\n` });
  try {
    await waitUntil(
      () => answer.test(console.text.slice(from)),
      `${String(answer)} from '${command}' on ${id}'s console`,
    );
  } catch (error) {
    // What the guest did say is what tells a slow answer from a wrong one.
    if (error instanceof Error)
      error.message += ` (got ${JSON.stringify(console.text.slice(from).slice(-200))})`;
    throw error;
  }
}

/** A console subscriber that collects text and the last message id. */
export class ConsoleWatcher {
  text = "";
  lastId: string | null = null;
  firstOffset: number | null = null;
  error: unknown = null;
  started = false;
  private readonly subscription: { unsubscribe(): void };

  constructor(client: TRPCClient<AppRouter>, id: string, lastEventId?: string) {
    this.subscription = client.vm.console.subscribe(
      lastEventId === undefined ? { id } : { id, lastEventId },
      {
        onStarted: () => {
          this.started = true;
        },
        onData: (message: { id: string; data: ConsoleChunk }) => {
          this.firstOffset ??= message.data.offset;
          this.text += Buffer.from(message.data.data, "base64").toString("utf8");
          this.lastId = message.id;
        },
        onError: (error: unknown) => {
          this.error = error;
        },
      },
    );
  }

  async waitFor(pattern: RegExp, timeoutMs = 20000): Promise<void> {
    try {
      await waitUntil(
        () => pattern.test(this.text),
        `${String(pattern)} on the console`,
        timeoutMs,
      );
    } catch (error) {
      const why =
        this.error === null
          ? ""
          : `; subscription error: ${this.error instanceof Error ? this.error.message : JSON.stringify(this.error)}`;
      throw new Error(
        `${error instanceof Error ? error.message : String(error)}; got ${JSON.stringify(this.text.slice(-300))}${why}`,
      );
    }
  }

  async waitStarted(): Promise<void> {
    await waitUntil(() => this.started, "the console subscription to start");
  }

  close(): void {
    this.subscription.unsubscribe();
  }
}

/** An events subscriber. */
export class EventWatcher {
  readonly events: VmEvent[] = [];
  lastId: string | null = null;
  started = false;
  private readonly subscription: { unsubscribe(): void };

  constructor(client: TRPCClient<AppRouter>, input: { id?: string; lastEventId?: string } = {}) {
    this.subscription = client.vm.events.subscribe(input, {
      onStarted: () => {
        this.started = true;
      },
      onData: (message) => {
        this.events.push(message.data as VmEvent);
        this.lastId = message.id;
      },
    });
  }

  of(vmId: string): string[] {
    return this.events
      .filter((e) => e.vmId === vmId)
      .map((e) =>
        e.event === "VM_STATE" ? `VM_STATE:${(e.data as { state: string }).state}` : e.event,
      );
  }

  async waitFor(check: (events: VmEvent[]) => boolean, what: string): Promise<void> {
    await waitUntil(() => check(this.events), what);
  }

  async waitStarted(): Promise<void> {
    await waitUntil(() => this.started, "the events subscription to start");
  }

  close(): void {
    this.subscription.unsubscribe();
  }
}

/** Asserts a tRPC call fails with `code` and a message matching `message`. */
export async function refused(
  call: Promise<unknown>,
  code: string,
  message: RegExp,
): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof TRPCClientError, String(error));
    assert.equal((error.data as { code?: string } | undefined)?.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

/** A VM's config.json as virgad stored it. */
export function storedConfig(fx: VirgadFixture, id: string): VmConfig {
  return JSON.parse(
    readFileSync(path.join(fx.runDir, "vms", id, "config.json"), "utf8"),
  ) as VmConfig;
}

/** A sparse raw image of `bytes` in the fixture's image directory (shared storage between its virgads). */
export function sparseDisk(fx: VirgadFixture, name: string, bytes: number): string {
  const file = path.join(fx.imagesDir, name);
  const fd = openSync(file, "w", 0o600);
  ftruncateSync(fd, bytes);
  closeSync(fd);
  return file;
}

/** The last `count N` the probe guest printed (0 before the first). */
export function lastCount(text: string): number {
  const last = [...text.matchAll(/count (\d+)/g)].at(-1);
  return last === undefined ? 0 : Number(last[1]);
}

/** A running probe VM on `client` with `disk` as its virtio-blk disk, at its prompt. */
export async function probeVmWithDisk(
  fx: VirgadFixture,
  client: TRPCClient<AppRouter>,
  id: string,
  disk: string,
  memoryMiB: number,
) {
  const created = await client.vm.create.mutate({
    id,
    config: {
      ...fx.probeConfig({ memoryMiB }),
      drives: [{ id: "data", file: disk, readOnly: false, direct: false }],
      devices: [{ driver: "virtio-blk-device", id: "data", drive: "data" }],
    },
  });
  const started = await client.vm.start.mutate({ id: created.id });
  fx.track(started.pid);
  const console = new ConsoleWatcher(client, id);
  await console.waitFor(/probe> /);
  return { console, pid: started.pid };
}
