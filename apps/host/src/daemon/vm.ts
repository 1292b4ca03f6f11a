// One VM as virgad sees it: its directory, config and metadata, the
// virga-vmm process (spawned by this virgad, or found alive at start and
// re-attached), the QMP link and the console relay.
//
// Start: virga-vmm is always launched with -S, so virgad can connect the
// console before the first guest instruction (the VMM drops serial output
// nobody reads) and the boot log is complete; then `cont` unless the VM was
// asked to start paused. The process is detached, with its output in the VM's
// log, so it outlives virgad.
//
// Exit: a process spawned here reports its exit code; a re-attached one is
// watched through /proc and its code read from its log ("exit <n>"). A VM
// that exits 0, or that a client quit or killed, is `shutdown`; anything
// else is `crashed`, with the last console lines kept.
//
// Live migration (migration.ts, incoming.ts): a VM being migrated carries a
// mark (`meta.migration`) naming the migration and its role. A destination
// VM starts without -S, waiting in `incoming` until the source's state is
// in, and runs from there; one whose process ends before that never ran and
// is removed. A source that handed its guest over is released: its exit is
// not a shutdown, and its directory goes.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import { rm, unlink, writeFile } from "node:fs/promises";
import { toArgv } from "../config/to-argv";
import { vmConfigSchema, type VmConfig } from "../config/vm-config";
import type { ImageDirs } from "./confine";
import { ConsoleRelay, consoleAccepted } from "./console-relay";
import { DaemonError, messageOf, wrongState } from "./errors";
import type { EventBus } from "./event-bus";
import { readJson, writeJson } from "./json-file";
import { exitFromLog, isAlive, isVmmFor, readTail } from "./proc";
import { QmpLink, type QmpEventMessage, type QmpReply } from "./qmp-link";
import { vmDisksDir, type VmPaths } from "./run-dir";
import { deleteTap, ensureTap, type OwnedTap } from "./taps";
import { confineConfig, ownedFields } from "./vm-input";

export type VmState =
  | "created"
  | "running"
  | "paused"
  | "prelaunch"
  /** A migration's destination, waiting for the source's state (QMP `inmigrate`). */
  | "incoming"
  | "shutdown"
  | "crashed";
export const LIVE_STATES: readonly VmState[] = ["running", "paused", "prelaunch", "incoming"];
const STOPPED_STATES: readonly VmState[] = ["created", "shutdown", "crashed"];

export interface VmExit {
  code: number | null;
  signal: string | null;
  at: string;
  /** The VMM's own error line ("error: <reason>" in its log), when it wrote one. */
  error: string | null;
  lastConsoleLines: string[];
}

export interface VmMeta {
  id: string;
  name: string;
  createdAt: string;
  startedAt: string | null;
  state: VmState;
  exit: VmExit | null;
  /** Taps virgad created for this VM's NICs on bridges (deleted with the NIC or the VM). */
  taps?: OwnedTap[];
  /** The last balloon target set through virgad, applied again after a start; absent: none. */
  balloonTargetBytes?: number;
  /** q35: devices whose device_del the guest has not finished (no DEVICE_DELETED yet). */
  unplugging?: string[];
  /** The template this VM was cloned from (vm.clone; templates.ts). */
  clonedFrom?: string;
  /** The live migration this VM is part of, while it lasts. */
  migration?: MigrationMark;
  /**
   * The QMP socket path on the running virga-vmm's command line when it is
   * not this directory's (a process that moved in by a local migration,
   * local-migration.ts); cleared at the next start.
   */
  vmmQmp?: string;
}

/** What a VM records of the live migration it is part of (docs/virgad-api.md, "Live migration"). */
export interface MigrationMark {
  migrationId: string;
  /** source: this VM is leaving; destination: this VM is the one arriving. */
  role: "source" | "destination";
  /** The other side: the destination virgad's URL (at the source), the source's hostname (at the destination). */
  peer: string;
  startedAt: string;
  /** The migration's status as last seen (setup, active, device; the end clears the mark). */
  status: string;
  /** A local migration's destination: the id of the VM whose place it takes (local-migration.ts). */
  replaces?: string;
}

/** What device changes (devices.ts) see of a VM and may change. */
export interface DeviceView {
  readonly id: string;
  readonly dir: string;
  readonly state: VmState;
  /** The VM's QMP while it runs (throws PRECONDITION_FAILED while reconnecting); null when stopped. */
  readonly qmp: QmpLink | null;
  readonly config: VmConfig;
  readonly taps: readonly OwnedTap[];
  readonly balloonTargetBytes: number | null;
  /** q35: devices being unplugged, until their DEVICE_DELETED. */
  readonly unplugging: readonly string[];
  /** Stores a new config (config.json), so the next start has it. */
  saveConfig(config: VmConfig): Promise<void>;
  saveTaps(taps: OwnedTap[]): Promise<void>;
  saveBalloonTarget(bytes: number | null): Promise<void>;
  saveUnplugging(ids: string[]): Promise<void>;
}

export interface VmSummary {
  id: string;
  name: string;
  state: VmState;
  pid: number | null;
  config: VmConfig;
  createdAt: string;
  startedAt: string | null;
  exit: VmExit | null;
  /** The template the VM was cloned from, if it was. */
  clonedFrom: string | null;
  /** The live migration it is part of right now, if any. */
  migration: MigrationMark | null;
}

export interface VmContext {
  bus: EventBus;
  images: ImageDirs;
  vmmBin: string;
  log: (line: string) => void;
  /** The control-plane host's socket, which serves this VM's QMP (null: none). */
  controlHost: string | null;
  /** A migration's destination VM whose process ended before it ran (the daemon removes it). */
  incomingEnded?: (vm: ManagedVm, exit: VmExit) => void;
  /** A device the guest let go of (q35's DEVICE_DELETED), or one left unplugging when the VM ended. */
  deviceDeleted?: (vm: ManagedVm, device: string) => void;
  /** Every QMP MIGRATION event of a VM (its status). */
  migrationEvent?: (vm: ManagedVm, status: string) => void;
}

export const LAST_CONSOLE_LINES = 50;
const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 10000;
const CONSOLE_ACCEPT_TIMEOUT_MS = 3000;
const WATCH_INTERVAL_MS = 1000;
/** How long after a start virgad keeps offering the recorded balloon target to a guest whose driver is not up yet. */
const BALLOON_REAPPLY_MS = 120000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** QMP's run states onto virgad's; undefined leaves the state as it is. */
function stateOfStatus(status: string): VmState | undefined {
  switch (status) {
    case "running":
      return "running";
    case "prelaunch":
      return "prelaunch";
    case "inmigrate":
      return "incoming";
    case "paused":
    case "postmigrate":
    case "finish-migrate":
      return "paused";
    default:
      return undefined;
  }
}

function qmpTime(event: QmpEventMessage): Date {
  const t = event.timestamp;
  if (t === undefined) return new Date();
  return new Date(t.seconds * 1000 + Math.floor(t.microseconds / 1000));
}

export class ManagedVm {
  readonly relay: ConsoleRelay;
  private meta: VmMeta;
  private config: VmConfig;
  private pid: number | null = null;
  /** The ChildProcess when this virgad spawned the VMM (its exit event gives the code). */
  private child: ChildProcess | null = null;
  private qmp: QmpLink | null = null;
  /** Bumped on every start/attach and exit, so callbacks of an earlier run are ignored. */
  private generation = 0;
  private stopRequested = false;
  /** This virgad sent SIGKILL (a re-attached process's signal cannot be read back). */
  private killSent = false;
  private sawShutdownEvent = false;
  private exitWaiters: (() => void)[] = [];
  private watchTimer: NodeJS.Timeout | null = null;
  private reconnecting = false;
  private consoleUpSince = 0;
  private consoleFailures = 0;
  private detached = false;
  private lock: Promise<unknown> = Promise.resolve();
  private metaChain: Promise<void> = Promise.resolve();

  private constructor(
    readonly paths: VmPaths,
    private readonly ctx: VmContext,
    meta: VmMeta,
    config: VmConfig,
  ) {
    this.meta = meta;
    this.config = config;
    this.relay = new ConsoleRelay(paths.dir, { log: ctx.log });
  }

  /** Loads a VM directory written by create (config.json, meta.json). */
  static load(paths: VmPaths, ctx: VmContext): ManagedVm {
    const config = vmConfigSchema.parse(readJson(paths.config));
    const meta = readJson(paths.meta) as VmMeta;
    return new ManagedVm(paths, ctx, meta, config);
  }

  get id(): string {
    return this.meta.id;
  }

  get state(): VmState {
    return this.meta.state;
  }

  get processId(): number | null {
    return this.pid;
  }

  summary(): VmSummary {
    return {
      id: this.meta.id,
      name: this.meta.name,
      state: this.meta.state,
      pid: this.pid,
      config: this.config,
      createdAt: this.meta.createdAt,
      startedAt: this.meta.startedAt,
      exit: this.meta.exit,
      clonedFrom: this.meta.clonedFrom ?? null,
      migration: this.meta.migration === undefined ? null : { ...this.meta.migration },
    };
  }

  get migration(): MigrationMark | null {
    return this.meta.migration ?? null;
  }

  /** Marks the VM as part of a migration, or clears the mark (stored in meta.json). */
  async setMigration(mark: MigrationMark | null): Promise<void> {
    if (mark === null) delete this.meta.migration;
    else this.meta.migration = { ...mark };
    this.saveMeta();
    await this.metaChain;
  }

  /** A status change of the migration in progress (kept in memory; the mark is stored as set). */
  migrationStatus(status: string): void {
    if (this.meta.migration !== undefined) this.meta.migration.status = status;
  }

  // ---- lifecycle ----------------------------------------------------------

  /**
   * Starts the VMM. `incoming`: the config's `incoming` is a live
   * migration's listening address: the VMM starts without -S (it runs the
   * guest as soon as the state is in, unless `paused`) and the VM waits in
   * `incoming`.
   */
  start(paused = false, options: { incoming?: boolean } = {}): Promise<VmSummary> {
    return this.locked(async () => {
      this.requireState("start", STOPPED_STATES);
      const incoming = options.incoming === true;
      // Files may have moved or been swapped for symlinks since create. A
      // clone's disks are its own copies, in its directory (clones.ts).
      const confined = await confineConfig(
        this.config,
        this.ctx.images.with(vmDisksDir(this.paths)),
      );
      for (const tap of this.meta.taps ?? []) {
        if (confined.netdevs.some((n) => "ifname" in n && n.ifname === tap.ifname)) {
          await ensureTap(tap);
        }
      }
      const config: VmConfig = { ...confined, ...ownedFields(this.paths) };
      delete config.pidfile;
      await this.removeRuntimeFiles();
      const argv = toArgv({ ...config, startPaused: incoming ? paused : true });
      const logFd = openSync(this.paths.log, "a", 0o600);
      let child: ChildProcess;
      try {
        writeSync(
          logFd,
          `${new Date().toISOString()} virgad: starting virga-vmm ${argv.join(" ")}\n`,
        );
        child = spawn(this.ctx.vmmBin, argv, {
          cwd: this.paths.dir,
          detached: true,
          stdio: ["ignore", logFd, logFd],
          // The control-plane host serves the VM's QMP; a companion of its own
          // (while the host is away) runs on the same Node as virgad, PATH or not.
          env: {
            ...process.env,
            VIRGA_NODE: process.execPath,
            ...(this.ctx.controlHost === null ? {} : { VIRGA_CONTROL_HOST: this.ctx.controlHost }),
          },
        });
      } finally {
        closeSync(logFd);
      }
      const pid = child.pid;
      if (pid === undefined) {
        throw new DaemonError(
          "INTERNAL_SERVER_ERROR",
          `could not start virga-vmm for '${this.id}'`,
        );
      }
      child.unref();
      child.on("error", () => undefined);
      const generation = ++this.generation;
      this.child = child;
      this.pid = pid;
      this.stopRequested = false;
      this.killSent = false;
      this.sawShutdownEvent = false;
      this.detached = false;
      child.once("exit", (code, signal) => {
        this.background(this.onExit(generation, code, signal));
      });
      await writeFile(this.paths.pid, `${pid}\n`, { mode: 0o600 });
      delete this.meta.vmmQmp;
      this.meta.startedAt = new Date().toISOString();
      this.meta.exit = null;
      this.ctx.log(`${this.id}: started virga-vmm pid ${pid}`);
      try {
        await this.waitForSockets(generation);
        // The socket files exist from bind(); connecting before listen() is refused.
        await this.retryRefused(generation, () => this.connectConsole(generation));
        if (!(await consoleAccepted(this.paths.console, CONSOLE_ACCEPT_TIMEOUT_MS))) {
          this.ctx.log(`${this.id}: console accept not confirmed; early output may be lost`);
        }
        await this.retryRefused(generation, () => this.connectQmp(generation));
        const qmp = this.requireQmp();
        await this.refreshState(qmp);
        if (incoming && this.meta.state !== "incoming") {
          throw new Error(`virga-vmm is ${this.meta.state}, not waiting for a migration`);
        }
        if (!incoming && !paused && !this.config.startPaused) {
          await qmp.execute("cont");
          this.setState("running");
        }
      } catch (error) {
        let why = messageOf(error);
        if (this.isCurrent(generation) && this.hasProcess()) {
          // Still alive but not usable: do not leave a half-started VM behind.
          this.signal("SIGKILL");
          await this.waitForExit(STOP_TIMEOUT_MS);
        } else {
          await this.exitRecording;
          // (recorded by the exit handler meanwhile; TypeScript still sees the null set above)
          const exit = this.meta.exit as VmExit | null;
          why =
            exit?.error ??
            `virga-vmm exited (code ${exit?.code ?? "?"}, signal ${exit?.signal ?? "none"})`;
        }
        throw new DaemonError("INTERNAL_SERVER_ERROR", `VM '${this.id}' failed to start: ${why}`, {
          cause: error,
        });
      }
      this.startWatching(generation);
      if (this.config.incoming !== undefined) {
        // A clone restores its template once, a migration's destination
        // receives its guest once; from now on it boots like any VM.
        const booting: VmConfig = { ...this.config };
        delete booting.incoming;
        await writeJson(this.paths.config, booting);
        this.config = booting;
      }
      if (this.meta.balloonTargetBytes !== undefined) {
        this.background(this.reapplyBalloon(generation, this.meta.balloonTargetBytes));
      }
      return this.summary();
    });
  }

  pause(): Promise<VmSummary> {
    return this.locked(async () => {
      this.requireState("pause", ["running"]);
      await this.requireQmp().execute("stop");
      this.setState("paused");
      return this.summary();
    });
  }

  resume(): Promise<VmSummary> {
    return this.locked(async () => {
      this.requireState("resume", ["paused", "prelaunch"]);
      await this.requireQmp().execute("cont");
      this.setState("running");
      return this.summary();
    });
  }

  /** QMP quit, then waits for the process to exit (SIGKILL if it does not). */
  quit(): Promise<VmSummary> {
    return this.locked(async () => {
      this.requireState("quit", LIVE_STATES);
      this.stopRequested = true;
      try {
        await this.requireQmp().execute("quit", undefined, 5000);
      } catch {
        // the connection may close before the reply; the exit is what counts
      }
      if (!(await this.waitForExit(STOP_TIMEOUT_MS))) {
        this.signal("SIGKILL");
        await this.waitForExit(STOP_TIMEOUT_MS);
      }
      return this.summary();
    });
  }

  kill(): Promise<VmSummary> {
    return this.locked(async () => {
      this.requireState("kill", LIVE_STATES);
      this.stopRequested = true;
      this.signal("SIGKILL");
      if (!(await this.waitForExit(STOP_TIMEOUT_MS))) {
        throw new DaemonError("TIMEOUT", `VM '${this.id}' (pid ${this.pid}) survived SIGKILL`);
      }
      return this.summary();
    });
  }

  /** Removes a stopped VM's directory. */
  remove(): Promise<void> {
    return this.locked(async () => {
      this.requireState("delete", STOPPED_STATES);
      await this.removeEverything();
    });
  }

  /**
   * After a completed migration the guest runs at the destination and this
   * VM's process ends by itself (the VMM exits once it handed over), which
   * is not a shutdown: its exit is not recorded, the process is waited for
   * (killed if it lingers), and the VM's directory and taps go
   * (`beforeRemoval` first, with the console's file complete).
   */
  releaseMigrated(beforeRemoval?: () => Promise<void>): Promise<void> {
    return this.locked(async () => {
      const pid = this.pid;
      // Callbacks of this run (its exit, its connections closing) are ignored from here.
      this.generation++;
      this.detached = true;
      this.stopWatching();
      if (pid !== null) {
        const deadline = Date.now() + STOP_TIMEOUT_MS;
        while (isAlive(pid) && Date.now() < deadline) await sleep(20);
        if (isAlive(pid)) {
          this.ctx.log(`${this.id}: migrated, but virga-vmm pid ${pid} lingers; killing it`);
          this.signal("SIGKILL");
          while (isAlive(pid) && Date.now() < deadline + STOP_TIMEOUT_MS) await sleep(20);
        }
      }
      this.qmp?.close();
      this.qmp = null;
      await this.relay.drain(200);
      this.pid = null;
      this.child = null;
      await this.relay.close();
      await beforeRemoval?.();
      await this.removeEverything();
    });
  }

  private async removeEverything(): Promise<void> {
    this.detached = true;
    this.stopWatching();
    for (const tap of this.meta.taps ?? []) {
      await deleteTap(tap.ifname).catch((error: unknown) => {
        this.ctx.log(`${this.id}: deleting tap ${tap.ifname}: ${messageOf(error)}`);
      });
    }
    await this.relay.remove();
    await this.metaChain;
    await rm(this.paths.dir, { recursive: true, force: true });
  }

  // ---- QMP and console ----------------------------------------------------

  /** Raw QMP: the VM's reply object, as it answered. */
  async qmpRequest(execute: string, args?: Record<string, unknown>): Promise<QmpReply> {
    this.requireState(`send '${execute}' to`, LIVE_STATES);
    return this.requireQmp().request(execute, args);
  }

  async cpus(): Promise<{ cpus: unknown; hotpluggable: unknown }> {
    this.requireState("query the vCPUs of", LIVE_STATES);
    const qmp = this.requireQmp();
    const [cpus, hotpluggable] = await Promise.all([
      qmp.execute("query-cpus"),
      qmp.execute("query-hotpluggable-cpus"),
    ]);
    return { cpus, hotpluggable };
  }

  consoleInput(data: string): void {
    this.requireState("write to the console of", LIVE_STATES);
    if (!this.relay.write(Buffer.from(data, "utf8"))) {
      throw new DaemonError(
        "PRECONDITION_FAILED",
        `the console of VM '${this.id}' is not connected (reconnecting)`,
      );
    }
  }

  // ---- devices ----------------------------------------------------------------

  /** A device change, one at a time with the lifecycle (a start never sees half of one). */
  editDevices<T>(change: (view: DeviceView) => Promise<T>): Promise<T> {
    return this.locked(() => {
      this.refuseWhileMigrating();
      return change(this.deviceView());
    });
  }

  /** Device changes and snapshots would make the machine differ from what is being migrated. */
  private refuseWhileMigrating(): void {
    const mark = this.meta.migration;
    if (mark === undefined) return;
    throw new DaemonError(
      "PRECONDITION_FAILED",
      mark.role === "source"
        ? `VM '${this.id}' is being migrated (migration ${mark.migrationId}); wait for it to end or cancel it with vm.migrateCancel`
        : `VM '${this.id}' is a migration's destination still waiting for its guest (migration ${mark.migrationId})`,
    );
  }

  /** q35: the devices whose unplug the guest has not finished. */
  get unplugging(): readonly string[] {
    return this.meta.unplugging ?? [];
  }

  deviceView(): DeviceView {
    const live = LIVE_STATES.includes(this.meta.state);
    return {
      id: this.id,
      dir: this.paths.dir,
      state: this.meta.state,
      qmp: live ? this.requireQmp() : null,
      config: this.config,
      taps: this.meta.taps ?? [],
      balloonTargetBytes: this.meta.balloonTargetBytes ?? null,
      unplugging: this.meta.unplugging ?? [],
      saveConfig: async (config) => {
        const checked = vmConfigSchema.parse(config);
        await writeJson(this.paths.config, checked);
        this.config = checked;
      },
      saveTaps: async (taps) => {
        this.meta.taps = taps;
        this.saveMeta();
        await this.metaChain;
      },
      saveBalloonTarget: async (bytes) => {
        if (bytes === null) delete this.meta.balloonTargetBytes;
        else this.meta.balloonTargetBytes = bytes;
        this.saveMeta();
        await this.metaChain;
      },
      saveUnplugging: async (ids) => {
        if (ids.length === 0) delete this.meta.unplugging;
        else this.meta.unplugging = ids;
        this.saveMeta();
        await this.metaChain;
      },
    };
  }

  /**
   * The guest's balloon driver comes up some time after boot and the VM
   * refuses a target before it (DeviceNotActive), so the recorded target is
   * offered once a second until it is taken.
   */
  private async reapplyBalloon(generation: number, bytes: number): Promise<void> {
    const deadline = Date.now() + BALLOON_REAPPLY_MS;
    while (Date.now() < deadline && this.wantsConnection(generation)) {
      const qmp = this.qmp;
      if (qmp !== null && !qmp.isClosed) {
        const reply = await qmp.request("balloon", { value: bytes }).catch(() => null);
        if (reply !== null && reply.error === undefined) {
          this.ctx.log(`${this.id}: balloon target ${bytes} applied again`);
          return;
        }
        if (reply?.error !== undefined && reply.error.class !== "DeviceNotActive") {
          this.ctx.log(`${this.id}: balloon target ${bytes} not applied: ${reply.error.desc}`);
          return;
        }
      }
      await sleep(1000);
    }
  }

  // ---- re-attach and detach -------------------------------------------------

  /**
   * At virgad start: re-attaches to a VMM that still runs (QMP and console,
   * without restarting it), or records that it died while virgad was away.
   */
  async attach(): Promise<void> {
    const pid = this.readPidFile();
    if (pid !== null && isVmmFor(pid, this.meta.vmmQmp ?? this.paths.qmp)) {
      const generation = ++this.generation;
      this.pid = pid;
      this.child = null;
      this.ctx.log(`${this.id}: re-attaching to virga-vmm pid ${pid}`);
      if (!LIVE_STATES.includes(this.meta.state)) this.setState("running");
      for (let attempt = 0; attempt < 20 && this.hasProcess(); attempt++) {
        try {
          if (!this.relay.connected) await this.connectConsole(generation);
          if (this.qmp === null) await this.connectQmp(generation);
          await this.refreshState(this.requireQmp());
          break;
        } catch (error) {
          if (attempt === 19) this.ctx.log(`${this.id}: re-attach: ${messageOf(error)}`);
          await sleep(100);
        }
      }
      this.startWatching(generation);
      if (this.qmp === null || !this.relay.connected) this.reconnectLater(generation);
      return;
    }
    if (pid !== null || LIVE_STATES.includes(this.meta.state)) {
      // It ran when the last virgad stopped and is gone now.
      this.generation++;
      this.pid = pid;
      await this.recordExit(null, null);
    }
  }

  /**
   * Another record takes over this VM's running process (a local
   * migration's destination taking its source's place): this one lets go
   * of it for good, leaving it running; its exit is no longer ours.
   */
  handOff(): Promise<void> {
    return this.locked(async () => {
      this.generation++;
      this.pid = null;
      this.child = null;
      await this.detach();
    });
  }

  /** virgad is exiting: drop connections, leave the VMM running. */
  async detach(): Promise<void> {
    this.detached = true;
    this.stopWatching();
    this.qmp?.close();
    this.qmp = null;
    await this.relay.close();
    await this.metaChain;
  }

  // ---- internals ------------------------------------------------------------

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** Runs work nobody awaits; a failure is logged, never an unhandled rejection. */
  private background(work: Promise<void>): void {
    work.catch((error: unknown) => {
      this.ctx.log(`${this.id}: ${messageOf(error)}`);
    });
  }

  /** Not narrowed by TypeScript: the process can end during any await. */
  private hasProcess(): boolean {
    return this.pid !== null;
  }

  private isCurrent(generation: number): boolean {
    return this.generation === generation;
  }

  private wantsConnection(generation: number): boolean {
    return this.generation === generation && !this.detached && this.pid !== null;
  }

  private requireState(action: string, allowed: readonly VmState[]): void {
    if (!allowed.includes(this.meta.state)) {
      throw wrongState(this.id, this.meta.state, action, allowed);
    }
  }

  private requireQmp(): QmpLink {
    if (this.qmp === null || this.qmp.isClosed) {
      throw new DaemonError(
        "PRECONDITION_FAILED",
        `VM '${this.id}' has no QMP connection right now (${this.pid === null ? "not running" : "reconnecting"})`,
      );
    }
    return this.qmp;
  }

  private setState(state: VmState, extra: Record<string, unknown> = {}): void {
    if (this.meta.state === state && Object.keys(extra).length === 0) return;
    this.meta.state = state;
    this.saveMeta();
    this.ctx.bus.publish(this.id, "VM_STATE", { state, ...extra });
  }

  private saveMeta(): void {
    const snapshot = structuredClone(this.meta);
    this.metaChain = this.metaChain
      .then(() => writeJson(this.paths.meta, snapshot))
      .catch((error: unknown) => {
        this.ctx.log(`${this.id}: writing meta.json: ${messageOf(error)}`);
      });
  }

  private readPidFile(): number | null {
    try {
      const pid = Number(readFileSync(this.paths.pid, "utf8").trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  private signal(name: NodeJS.Signals): void {
    if (this.pid === null) return;
    if (name === "SIGKILL") this.killSent = true;
    try {
      process.kill(this.pid, name);
    } catch {
      // already gone
    }
  }

  private async removeRuntimeFiles(): Promise<void> {
    for (const file of [this.paths.qmp, this.paths.console, this.paths.pid]) {
      await unlink(file).catch(() => undefined);
    }
  }

  /** Waits until virga-vmm has created both sockets; fails if it exits first. */
  private async waitForSockets(generation: number): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(existsSync(this.paths.qmp) && existsSync(this.paths.console))) {
      if (this.generation !== generation || this.pid === null) {
        throw new Error("virga-vmm exited during start");
      }
      if (Date.now() > deadline) {
        throw new Error(`virga-vmm made no sockets within ${START_TIMEOUT_MS} ms`);
      }
      await sleep(20);
    }
  }

  /** Retries `connect` while the VMM's socket exists but does not listen yet. */
  private async retryRefused(generation: number, connect: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        await connect();
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const retry = code === "ECONNREFUSED" || code === "ENOENT";
        if (!retry || !this.isCurrent(generation) || !this.hasProcess() || Date.now() > deadline) {
          throw error;
        }
        await sleep(20);
      }
    }
  }

  private async connectConsole(generation: number): Promise<void> {
    await this.relay.connect(this.paths.console, () => {
      this.onConsoleClosed(generation);
    });
    this.consoleUpSince = Date.now();
  }

  private async connectQmp(generation: number): Promise<void> {
    const link = await QmpLink.connect(this.paths.qmp, (event) => {
      this.onQmpEvent(generation, event);
    });
    if (this.generation !== generation || this.detached) {
      link.close();
      throw new Error("the VM stopped while connecting");
    }
    this.qmp = link;
    link.onClose(() => {
      if (this.qmp === link) this.qmp = null;
      this.onConnectionLost(generation);
    });
  }

  private async refreshState(qmp: QmpLink): Promise<void> {
    const status = (await qmp.execute("query-status")) as { status?: string };
    const state = stateOfStatus(status.status ?? "");
    if (state !== undefined) this.setState(state);
  }

  private onQmpEvent(generation: number, event: QmpEventMessage): void {
    if (generation !== this.generation) return;
    this.ctx.bus.publish(this.id, event.event, event.data ?? {}, qmpTime(event));
    switch (event.event) {
      case "STOP":
        if (this.meta.state === "running") this.setState("paused");
        break;
      case "RESUME":
        if (LIVE_STATES.includes(this.meta.state)) this.setState("running");
        break;
      case "SHUTDOWN":
        this.sawShutdownEvent = true;
        break;
      case "DEVICE_DELETED": {
        const device = (event.data as { device?: unknown } | undefined)?.device;
        if (typeof device === "string") this.ctx.deviceDeleted?.(this, device);
        break;
      }
      case "MIGRATION": {
        const status = (event.data as { status?: unknown } | undefined)?.status;
        if (typeof status !== "string") break;
        if (this.meta.state === "incoming" && status === "completed") {
          // The guest is in: running, or left paused (prelaunch) when the source was.
          const qmp = this.qmp;
          if (qmp !== null) this.background(this.refreshState(qmp));
        }
        this.ctx.migrationEvent?.(this, status);
        break;
      }
    }
  }

  private onConsoleClosed(generation: number): void {
    // A connection that dies at once (the VMM still had the previous client)
    // backs off; one that lived a while reconnects quickly.
    this.consoleFailures = Date.now() - this.consoleUpSince < 1000 ? this.consoleFailures + 1 : 0;
    if (generation === this.generation && !this.detached && this.pid !== null) {
      this.ctx.log(`${this.id}: console connection closed by the VMM; reconnecting`);
    }
    this.onConnectionLost(generation);
  }

  private onConnectionLost(generation: number): void {
    if (generation !== this.generation || this.detached || this.pid === null) return;
    this.reconnectLater(generation);
  }

  /** Keeps QMP and the console connected while the VMM lives. */
  private reconnectLater(generation: number): void {
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.background(
      (async () => {
        let delay = 50;
        try {
          while (this.wantsConnection(generation)) {
            await sleep(Math.min(delay * 2 ** this.consoleFailures, 2000));
            const pid = this.pid;
            if (!this.wantsConnection(generation) || pid === null) return;
            if (!isAlive(pid)) {
              // Our own child reports through its exit event; a re-attached one through here.
              if (this.child === null) await this.recordExit(null, null);
              return;
            }
            try {
              if (this.qmp === null) {
                await this.connectQmp(generation);
                await this.refreshState(this.requireQmp());
              }
              if (!this.relay.connected) {
                await this.connectConsole(generation);
                this.ctx.log(`${this.id}: console reconnected`);
              }
              return;
            } catch {
              delay = Math.min(delay * 2, 1000);
            }
          }
        } finally {
          this.reconnecting = false;
        }
      })(),
    );
  }

  /** A re-attached VMM is not our child: poll /proc for its end. */
  private startWatching(generation: number): void {
    this.stopWatching();
    this.watchTimer = setInterval(() => {
      if (generation !== this.generation || this.pid === null) {
        this.stopWatching();
        return;
      }
      if (this.child === null && !isAlive(this.pid)) this.background(this.recordExit(null, null));
    }, WATCH_INTERVAL_MS);
    this.watchTimer.unref();
  }

  private stopWatching(): void {
    if (this.watchTimer !== null) clearInterval(this.watchTimer);
    this.watchTimer = null;
  }

  private async onExit(
    generation: number,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): Promise<void> {
    if (generation !== this.generation) return;
    await this.recordExit(code, signal);
  }

  /** The VMM is gone: keep how it ended, clean its files, tell everyone. */
  private recordExit(code: number | null, signal: string | null): Promise<void> {
    if (this.exitRecorded === this.generation && this.exitRecording !== null) {
      return this.exitRecording;
    }
    this.exitRecorded = this.generation;
    this.exitRecording = this.recordExitOnce(code, signal);
    return this.exitRecording;
  }

  private async recordExitOnce(code: number | null, signal: string | null): Promise<void> {
    const pid = this.pid;
    this.pid = null;
    this.child = null;
    this.stopWatching();
    // What the guest printed last, and the VMM's last events (the SHUTDOWN a
    // quit sends), may still be in the sockets: read them before closing.
    const qmp = this.qmp;
    await Promise.all([this.relay.drain(200), qmp === null ? null : qmpDrained(qmp, 200)]);
    qmp?.close();
    if (this.qmp === qmp) this.qmp = null;
    const logged =
      pid === null ? { code: null, error: null } : await exitFromLog(this.paths.log, pid);
    let error = logged.error;
    if (error === null && code !== 0 && pid !== null) {
      // Not from the VMM's logger (a crash in node, or a command line it
      // refused before logging began): the log's last line says most.
      const tail = (await readTail(this.paths.log, 16384)).trimEnd().split("\n").pop() ?? "";
      const said = /^virga-vmm: (?:error: )?(.+)$/.exec(tail);
      if (said !== null) error = said[1] ?? null;
    }
    const exitCode = code ?? logged.code;
    // A re-attached process that logged no exit code and was sent SIGKILL died of it.
    if (signal === null && exitCode === null && this.killSent) signal = "SIGKILL";
    const clean =
      this.stopRequested ||
      exitCode === 0 ||
      (exitCode === null && signal === null && this.sawShutdownEvent);
    const exit: VmExit = {
      code: exitCode,
      signal,
      at: new Date().toISOString(),
      error,
      lastConsoleLines: this.relay.lastLines(LAST_CONSOLE_LINES),
    };
    await this.removeRuntimeFiles();
    if (this.meta.migration?.role === "source" && this.meta.migration.status === "completed") {
      // It handed its guest over (migration.ts releases it): not a shutdown.
      this.ctx.log(
        `${this.id}: virga-vmm${pid === null ? "" : ` pid ${pid}`} ended after migrating`,
      );
      for (const waiter of this.exitWaiters.splice(0)) waiter();
      return;
    }
    this.meta.exit = exit;
    const state: VmState = clean ? "shutdown" : "crashed";
    this.ctx.log(
      `${this.id}: virga-vmm${pid === null ? "" : ` pid ${pid}`} ended (${state}, code ${exit.code}, signal ${exit.signal})`,
    );
    this.setState(state, { exit });
    // The guest is gone, and with it what it still held: those unplugs are done.
    for (const device of this.meta.unplugging ?? []) this.ctx.deviceDeleted?.(this, device);
    for (const waiter of this.exitWaiters.splice(0)) waiter();
    if (this.meta.migration?.role === "destination") this.ctx.incomingEnded?.(this, exit);
  }

  private exitRecorded = -1;
  private exitRecording: Promise<void> | null = null;

  /** Resolves true once the process has ended (polling /proc for a re-attached one). */
  private async waitForExit(timeoutMs: number): Promise<boolean> {
    if (this.pid === null) return true;
    const deadline = Date.now() + timeoutMs;
    const exited = { done: false };
    this.exitWaiters.push(() => (exited.done = true));
    while (!exited.done && Date.now() < deadline) {
      const pid = this.pid as number | null;
      if (this.child === null && pid !== null && !isAlive(pid)) await this.recordExit(null, null);
      await sleep(20);
    }
    return exited.done || !this.hasProcess();
  }
}

/** Resolves once the VMM closed the QMP connection (all it sent has been read), or after `timeoutMs`. */
function qmpDrained(qmp: QmpLink, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    qmp.onClose(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
