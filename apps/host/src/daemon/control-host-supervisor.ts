// virgad keeps its run directory's control-plane host running: the Node
// process that serves the control planes (QMP) of all its VMs, so a managed
// VM costs no Node process of its own (docs/architecture.md, "Processes").
//
// At start virgad adopts a host that answers on <run>/control-host.sock or
// starts one: detached, in its own session, output to <run>/control-host.log,
// so it outlives virgad as the VMs do and serves their QMP while virgad is
// stopped. virgad keeps a watching connection to it and starts it again when
// it ends (a host that keeps dying is started less often). VMs are told the
// socket (VIRGA_CONTROL_HOST); while no host answers they serve QMP from a
// companion of their own and move back when it returns.
import { spawn } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { RunDir } from "./run-dir";

/** dist/control-host.cjs (scripts/bundle.mjs), from dist/src/daemon. */
export const CONTROL_HOST_SCRIPT = path.resolve(__dirname, "..", "..", "control-host.cjs");
const START_TIMEOUT_MS = 10000;
/** Starts within this window beyond the third are delayed. */
const RESTART_WINDOW_MS = 60000;
const RESTART_BACKOFF_MS = 5000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class ControlHostSupervisor {
  private watch: net.Socket | null = null;
  private closed = false;
  private starting: Promise<void> | null = null;
  private readonly starts: number[] = [];

  constructor(
    private readonly run: RunDir,
    private readonly log: (line: string) => void,
    private readonly script = CONTROL_HOST_SCRIPT,
  ) {}

  get socketPath(): string {
    return this.run.controlHostSocket;
  }

  /** Adopts the running host or starts one; resolves once it answers (or failed to). */
  ensure(): Promise<void> {
    this.starting ??= this.adoptOrStart().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  /** virgad is exiting: stop watching; the host keeps serving the VMs. */
  close(): void {
    this.closed = true;
    this.watch?.destroy();
    this.watch = null;
  }

  /** Not narrowed by TypeScript: close() can run during any await. */
  private isClosed(): boolean {
    return this.closed;
  }

  private async adoptOrStart(): Promise<void> {
    if (await this.watchHost()) {
      this.log(`control-plane host: already serving on ${this.socketPath}`);
      return;
    }
    const recent = this.starts.filter((at) => Date.now() - at < RESTART_WINDOW_MS);
    if (recent.length >= 3) await sleep(RESTART_BACKOFF_MS);
    if (this.closed) return;
    this.starts.splice(0, this.starts.length, ...recent, Date.now());
    const exited = this.spawnHost();
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline && !exited.done) {
      if ((await this.watchHost()) || this.isClosed()) return;
      await sleep(50);
    }
    this.log(
      `control-plane host: did not come up (see ${this.run.controlHostLog}); VMs serve QMP from companions of their own meanwhile`,
    );
  }

  private spawnHost(): { done: boolean } {
    const exited = { done: false };
    const logFd = openSync(this.run.controlHostLog, "a", 0o600);
    try {
      writeSync(
        logFd,
        `${new Date().toISOString()} virgad[${process.pid}]: starting the control-plane host\n`,
      );
      const child = spawn(
        process.execPath,
        [
          // An exception in an addon callback must reach the host's handler,
          // which ends only that VM's part (vmm/control-host-entry.ts).
          "--force-node-api-uncaught-exceptions-policy=true",
          this.script,
          "--socket",
          this.socketPath,
          "--pidfile",
          this.run.controlHostPid,
        ],
        { cwd: this.run.root, detached: true, stdio: ["ignore", logFd, logFd] },
      );
      child.on("error", (error) => {
        this.log(`control-plane host: cannot start: ${error.message}`);
        exited.done = true;
      });
      child.on("exit", () => {
        exited.done = true;
      });
      child.unref();
      this.log(`control-plane host: started pid ${child.pid ?? "?"} on ${this.socketPath}`);
    } finally {
      closeSync(logFd);
    }
    return exited;
  }

  /** Connects the watching connection; false when no host answers. */
  private async watchHost(): Promise<boolean> {
    const socket = net.connect(this.socketPath);
    const connected = await new Promise<boolean>((resolve) => {
      socket.once("connect", () => {
        resolve(true);
      });
      socket.once("error", () => {
        resolve(false);
      });
    });
    if (!connected || this.closed) {
      socket.destroy();
      return false;
    }
    socket.on("error", () => undefined);
    socket.write('{"watch":true}\n');
    socket.on("close", () => {
      if (this.watch !== socket || this.closed) return;
      this.watch = null;
      this.log("control-plane host: it has ended; starting it again");
      void this.ensure();
    });
    socket.resume();
    this.watch = socket;
    return true;
  }
}
