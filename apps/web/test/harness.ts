// A real portal and a real virgad for tests, started the way `npm start`
// starts them (apps/web/scripts/start.mjs) but in a scratch data directory on
// free ports, on SQLite or on a throwaway PostgreSQL server. stop() kills
// every VM the run left behind, stops the servers, and keeps the data
// directory (logs, database) when asked to. For scale-out tests: more
// portals on one database (startPortal) and more virgads (startVirgad).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createTRPCClient, httpLink, TRPCClientError, type TRPCClient } from "@trpc/client";
import { startPostgres } from "@virga/prisma/postgres-server";
import type { AppRouter } from "../src/server/trpc/root";

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, "..", "..", "..");
export const PROBE_ELF = path.join(REPO_ROOT, "native", "probe-guest", "build", "probe.elf");
export const ADMIN_PASSWORD = "virga-test-admin-1";

export interface Stack {
  url: string;
  hostUrl: string;
  dataDir: string;
  adminPassword: string;
  /** `npm start`'s process (apps/web/scripts/start.mjs), parent of the portal and virgad. */
  pid: number;
  /** Everything the servers printed so far. */
  output(): string;
  stop(options?: { keepData?: boolean }): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Kills the VM processes and the control-plane host virgad started under
 * `runDir` (they outlive virgad by design).
 */
export function killVms(runDir: string): void {
  let ids: string[] = [];
  try {
    ids = readdirSync(path.join(runDir, "vms"));
  } catch {
    ids = [];
  }
  const pidFiles = [
    ...ids.map((id) => path.join(runDir, "vms", id, "pid")),
    path.join(runDir, "control-host.pid"),
  ];
  for (const file of pidFiles) {
    try {
      const pid = Number(readFileSync(file, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0) process.kill(pid, "SIGKILL");
    } catch {
      // no pid file, or the process is gone already
    }
  }
  // A control host virgad respawned a moment ago may not have written its
  // pid file yet; every process of this run dir names it in its arguments.
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (args.some((arg) => arg.includes(runDir + "/"))) process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone already
    }
  }
}

/** A spawned `npm start` (apps/web/scripts/start.mjs) and what it printed. */
interface Launch {
  child: ChildProcess;
  output(): string;
  running(): boolean;
  /** SIGTERM, then SIGKILL after 10 s. */
  terminate(): Promise<void>;
}

function launch(env: Record<string, string>, args: string[] = []): Launch {
  let output = "";
  const child: ChildProcess = spawn(
    process.execPath,
    [path.join(REPO_ROOT, "apps", "web", "scripts", "start.mjs"), ...args],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, VIRGA_ADMIN_PASSWORD: ADMIN_PASSWORD, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  /** Read through a function: the exit fields change behind TypeScript's back. */
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return {
    child,
    output: () => output,
    running,
    terminate: async () => {
      if (!running()) return;
      child.kill("SIGTERM");
      for (let i = 0; i < 100 && running(); i++) await sleep(100);
      if (running()) child.kill("SIGKILL");
    },
  };
}

/** Waits until the portal answers /api/health and `ready` holds for its output. */
async function waitReady(
  started: Launch,
  url: string,
  timeoutMs: number,
  ready: (output: string) => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!started.running())
      throw new Error(`the portal exited while starting:\n${started.output()}`);
    if (Date.now() > deadline)
      throw new Error(`the portal did not start in time:\n${started.output()}`);
    try {
      const response = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(1000) });
      if (response.ok && ready(started.output())) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
}

/**
 * The database a test stack uses: a SQLite file in its data directory, or
 * with `postgresql` (or VIRGA_TEST_DATABASE=postgresql) a database on a
 * throwaway PostgreSQL server of its own from Debian's packages.
 */
export type TestDatabase = "sqlite" | "postgresql";

export function testDatabase(): TestDatabase {
  return process.env.VIRGA_TEST_DATABASE === "postgresql" ? "postgresql" : "sqlite";
}

export async function startStack(
  options: { readyTimeoutMs?: number; database?: TestDatabase; env?: Record<string, string> } = {},
): Promise<Stack> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "virga-portal-test-"));
  const server =
    (options.database ?? testDatabase()) === "postgresql" ? await startPostgres() : null;
  const [portalPort, hostPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${portalPort}`;
  const hostUrl = `http://127.0.0.1:${hostPort}`;
  let started: Launch;
  try {
    started = launch({
      VIRGA_DATA_DIR: dataDir,
      VIRGA_PORTAL_PORT: String(portalPort),
      VIRGA_HOST_LISTEN: `127.0.0.1:${hostPort}`,
      VIRGA_DATABASE_URL: server === null ? "" : await server.createDatabase("virga"),
      ...options.env,
    });
  } catch (error) {
    await server?.stop();
    throw error;
  }

  const stop = async (stopOptions: { keepData?: boolean } = {}) => {
    killVms(path.join(dataDir, "host"));
    await started.terminate();
    killVms(path.join(dataDir, "host"));
    await server?.stop();
    // A VM's process killed a moment ago may still be closing its files in there.
    if (!stopOptions.keepData)
      rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };

  try {
    await waitReady(started, url, options.readyTimeoutMs ?? 180_000, (output) =>
      output.includes("Local host"),
    );
  } catch (error) {
    await stop({ keepData: true });
    throw error;
  }
  return {
    url,
    hostUrl,
    dataDir,
    adminPassword: ADMIN_PASSWORD,
    pid: started.child.pid ?? -1,
    output: () => started.output() + (server === null ? "" : `\n[postgresql]\n${server.log()}`),
    stop,
  };
}

/** One more portal on a database, without a virgad of its own (`npm start -- --no-virgad`). */
export interface Portal {
  url: string;
  output(): string;
  /** Sends a signal to the portal's server process (SIGKILL: as a crash would). */
  signal(signal: NodeJS.Signals): void;
  /** The portal's server process (start.mjs's child), while it runs. */
  serverPids(): number[];
  stop(): Promise<void>;
}

/** The processes whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The child of `parent` whose command line holds `needle` (a script's name), or null. */
export function childRunning(parent: number, needle: string): number | null {
  for (const pid of childrenOf(parent)) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle)) return pid;
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/**
 * The key every portal of this test process seals host tokens with: portals
 * sharing a database must share it (docs/security.md), as an operator would
 * set one VIRGA_SECRET_KEY for all instances.
 */
const SHARED_SECRET_KEY = randomBytes(32).toString("hex");

export async function startPortal(
  databaseUrl: string,
  options: { readyTimeoutMs?: number } = {},
): Promise<Portal> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "virga-portal-test-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = launch(
    {
      VIRGA_DATA_DIR: dataDir,
      VIRGA_PORTAL_PORT: String(port),
      VIRGA_DATABASE_URL: databaseUrl,
      VIRGA_SECRET_KEY: SHARED_SECRET_KEY,
    },
    ["--no-virgad"],
  );
  const stop = async () => {
    await started.terminate();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitReady(started, url, options.readyTimeoutMs ?? 180_000, () => true);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    output: () => started.output(),
    signal: (signal) => {
      // start.mjs's only child is the portal's server (killed, start.mjs exits by itself).
      for (const pid of childrenOf(started.child.pid ?? -1)) process.kill(pid, signal);
    },
    serverPids: () => childrenOf(started.child.pid ?? -1),
    stop,
  };
}

/** A virgad of its own (the way start.mjs runs one) for tests with several hosts. */
export interface Virgad {
  url: string;
  token: string;
  runDir: string;
  output(): string;
  stop(): Promise<void>;
}

export async function startVirgad(): Promise<Virgad> {
  const runDir = mkdtempSync(path.join(tmpdir(), "virga-virgad-test-"));
  const bin = path.join(REPO_ROOT, "apps", "host", "bin", "virgad.js");
  const printed = spawnSync(process.execPath, [bin, "--print-token", "--run-dir", runDir], {
    encoding: "utf8",
  });
  if (printed.status !== 0) throw new Error(`virgad --print-token failed: ${printed.stderr}`);
  const token = printed.stdout.trim();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  const child = spawn(
    process.execPath,
    [bin, "--listen", `127.0.0.1:${port}`, "--run-dir", runDir],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    killVms(runDir);
    if (running()) {
      child.kill("SIGTERM");
      for (let i = 0; i < 50 && running(); i++) await sleep(100);
      if (running()) child.kill("SIGKILL");
    }
    killVms(runDir);
    rmSync(runDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const response = await fetch(`${url}/trpc/host.info`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(1000),
      });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (!running() || Date.now() > deadline) {
      await stop();
      throw new Error(`virgad did not come up at ${url}:\n${output}`);
    }
    await sleep(100);
  }
  return { url, token, runDir, output: () => output, stop };
}

/** A second virgad for the stack (a host of its own: run directory, port, token). */
export interface ExtraHost {
  url: string;
  token: string;
  runDir: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `virgad` on `<dataDir>/<name>` with the default image directories, as the local host has. */
export async function startExtraHost(stack: Stack, name: string): Promise<ExtraHost> {
  const runDir = path.join(stack.dataDir, name);
  let output = "";
  const child = spawn(
    process.execPath,
    [
      path.join(REPO_ROOT, "apps", "host", "bin", "virgad.js"),
      "--listen",
      "127.0.0.1:0",
      "--run-dir",
      runDir,
    ],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    killVms(runDir);
    if (running()) child.kill("SIGKILL");
    for (let i = 0; i < 50 && running(); i++) await sleep(100);
    killVms(runDir);
  };
  const deadline = Date.now() + 30_000;
  let match: RegExpExecArray | null = null;
  while ((match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)) === null) {
    if (!running() || Date.now() > deadline) {
      await stop();
      throw new Error(`virgad '${name}' did not start:\n${output}`);
    }
    await sleep(100);
  }
  const token = readFileSync(path.join(runDir, "token"), "utf8").trim();
  return { url: match[1] ?? "", token, runDir, output: () => output, stop };
}

/** A raw HTTP answer: status and parsed JSON body. */
export interface RawReply {
  status: number;
  body: unknown;
}

/** The body of a portal or tRPC error: `{"error": {"message", "code", "data"}}`. */
export interface ErrorBody {
  error: {
    message: string;
    code: string | number;
    data?: { code?: string; httpStatus?: number; fields?: { path: string; message: string }[] };
  };
}

export function errorOf(reply: RawReply): ErrorBody["error"] {
  const body = reply.body as Partial<ErrorBody> | null;
  if (body?.error === undefined)
    throw new Error(`expected an error, got HTTP ${reply.status}: ${JSON.stringify(reply.body)}`);
  return body.error;
}

/** The portal as a script sees it: tRPC over plain HTTP (typed), and raw calls. */
export class PortalApi {
  readonly trpc: TRPCClient<AppRouter>;

  constructor(
    readonly url: string,
    readonly token: string | null,
    readonly session: { cookie: string; csrf: string } | null = null,
  ) {
    this.trpc = createTRPCClient<AppRouter>({
      links: [httpLink({ url: `${url}/api/trpc`, headers: () => this.headers() })],
    });
  }

  headers(): Record<string, string> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
    if (this.session !== null) {
      headers.cookie = this.session.cookie;
      headers["x-csrf-token"] = this.session.csrf;
    }
    return headers;
  }

  /** GET /api/trpc/<path>?input=<json>, as curl would send it. */
  async query(path: string, input?: unknown): Promise<RawReply> {
    const query = input === undefined ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`;
    const response = await fetch(`${this.url}/api/trpc/${path}${query}`, {
      headers: this.headers(),
    });
    return { status: response.status, body: (await response.json()) as unknown };
  }

  /** POST /api/trpc/<path> with a JSON body, as curl would send it. */
  async mutate(path: string, input?: unknown): Promise<RawReply> {
    const response = await fetch(`${this.url}/api/trpc/${path}`, {
      method: "POST",
      headers: this.headers(),
      body: input === undefined ? null : JSON.stringify(input),
    });
    return { status: response.status, body: (await response.json()) as unknown };
  }

  /** POST /api/v1/vms/{id}/qmp. */
  async qmp(vmId: string, body: unknown): Promise<RawReply> {
    const response = await fetch(`${this.url}/api/v1/vms/${encodeURIComponent(vmId)}/qmp`, {
      method: "POST",
      headers: this.headers(),
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as unknown };
  }
}

/** Signs in as a user; the session behaves like a browser's (cookie + CSRF header). */
export async function signIn(url: string, username: string, password: string): Promise<PortalApi> {
  const response = await fetch(`${url}/api/trpc/auth.signIn`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({ username, password }),
  });
  if (response.status !== 200) throw new Error(`sign-in failed: HTTP ${response.status}`);
  const cookies = response.headers.getSetCookie().map((c) => c.split(";")[0] ?? "");
  const csrf = cookies.find((c) => c.startsWith("virga_csrf="))?.slice("virga_csrf=".length) ?? "";
  return new PortalApi(url, null, { cookie: cookies.join("; "), csrf: decodeURIComponent(csrf) });
}

/** An API token of the given role, made by the admin, and a client using it. */
export async function tokenApi(
  stack: Stack,
  role: "viewer" | "operator" | "admin",
  name: string = role,
) {
  const admin = await signIn(stack.url, "admin", stack.adminPassword);
  const created = await admin.trpc.tokens.create.mutate({ name, role });
  return new PortalApi(stack.url, created.token);
}

/**
 * Each call, made by a viewer, is refused 403 for needing the operator
 * role. One at a time: a refusal left waiting would be an unhandled rejection.
 */
export async function assertOperatorOnly(calls: (() => Promise<unknown>)[]): Promise<void> {
  for (const call of calls) {
    const refused = await statusOf(call());
    assert.equal(refused.status, 403);
    assert.match(refused.message, /needs the operator role \(you are viewer\)/);
  }
}

/** The HTTP status a failed tRPC call got. */
export async function statusOf(
  call: Promise<unknown>,
): Promise<{ status: number; message: string }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof TRPCClientError) {
      const data = error.data as { httpStatus?: number } | undefined;
      return { status: data?.httpStatus ?? 0, message: error.message };
    }
    throw error;
  }
  return { status: 200, message: "" };
}

/** A SQLite database held locked by another process (fault tests). */
export interface SqliteLock {
  /** Resolves when the holder committed and ended. */
  released: Promise<void>;
}

/**
 * Locks the SQLite file at `file` from a process of its own, as a backup
 * tool or a sqlite3 shell in a transaction would: BEGIN EXCLUSIVE (in WAL
 * mode other processes read on, no one writes) held for `holdMs`, then
 * COMMIT. Resolves once the lock is held. Through better-sqlite3, the driver
 * the portal itself uses.
 */
export async function lockSqlite(file: string, holdMs: number): Promise<SqliteLock> {
  const holder = spawn(
    process.execPath,
    [
      "-e",
      `const { createRequire } = require("node:module");
       const adapter = require.resolve("@prisma/adapter-better-sqlite3");
       const Database = createRequire(adapter)("better-sqlite3");
       const db = new Database(process.argv[1]);
       db.exec("BEGIN EXCLUSIVE");
       console.log("locked");
       setTimeout(() => { db.exec("COMMIT"); db.close(); }, Number(process.argv[2]));`,
      file,
      String(holdMs),
    ],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const released = new Promise<void>((resolve, reject) => {
    holder.on("exit", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`the process locking ${file} ended with ${code}: ${output}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    holder.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("locked")) resolve();
    });
    holder.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    released.then(() => reject(new Error(`${file} was never locked: ${output}`)), reject);
  });
  return { released };
}

/**
 * The longest the event loop stood still while measured: a timer every 10 ms
 * notes how late it fires. stop() gives the worst delay in ms.
 */
export function loopStalls(): { stop: () => number } {
  let last = Date.now();
  let worst = 0;
  const tick = () => {
    const now = Date.now();
    worst = Math.max(worst, now - last - 10);
    last = now;
  };
  const timer = setInterval(tick, 10);
  return {
    stop: () => {
      // A stall just before stop() has had no tick to note it yet.
      tick();
      clearInterval(timer);
      return worst;
    },
  };
}

export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * A test file's failures: `track` wraps a test so that its failure marks the
 * run (as does `fail`, for set-up), and `stop` then prints the servers'
 * output and keeps the data directory for a look.
 */
export class FailureWatch {
  failed = false;

  fail(): void {
    this.failed = true;
  }

  track(fn: () => Promise<void>): () => Promise<void> {
    return async () => {
      try {
        await fn();
      } catch (error) {
        this.failed = true;
        throw error;
      }
    };
  }

  async stop(stack: Stack): Promise<void> {
    if (this.failed)
      console.log(`portal output (data kept in ${stack.dataDir}):\n${stack.output()}`);
    await stack.stop({ keepData: this.failed });
  }
}
