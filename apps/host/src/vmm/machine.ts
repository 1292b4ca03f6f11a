// The VM as the control plane sees it: the VM process (over its channel)
// plus QMP's run state and events. Implements VmControl for the QMP commands.
// Operations run one at a time, so concurrent clients see whole transitions.
import type { VmConfig } from "../config/vm-config";
import type {
  ChardevInfo,
  EventListener,
  RunStatus,
  ShutdownReason,
  VcpuState,
  VmControl,
} from "./control";
import { EventHub } from "./events";
import { NamedFds } from "./named-fds";

/** What the VM process does on request (a fake stands in for it in tests). */
export interface NativeVm {
  pause(): Promise<void>;
  resume(): Promise<void>;
  reset(): Promise<void>;
  powerButton(): Promise<void>;
  vcpus(): Promise<VcpuState[]>;
}

export class Machine implements VmControl {
  private state: RunStatus;
  private readonly hub = new EventHub();
  private queue: Promise<unknown> = Promise.resolve();
  readonly fds = new NamedFds();

  /**
   * onShutdown ends the control plane (and, for quit, the VM process).
   * status: where the VM process has the VM; it started the vCPUs (paused
   * with -S) before any control plane existed, and says so again to one it
   * restarts.
   */
  constructor(
    readonly config: VmConfig,
    private readonly vm: NativeVm,
    private readonly ptyPath: string | null,
    private readonly onShutdown: (reason: ShutdownReason) => void,
    status: "prelaunch" | "paused" | "running" = config.startPaused ? "prelaunch" : "running",
  ) {
    this.state = status;
  }

  status(): RunStatus {
    return this.state;
  }

  pause(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== "running") return;
      await this.vm.pause();
      this.state = "paused";
      this.hub.emit("STOP");
    });
  }

  resume(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== "paused" && this.state !== "prelaunch") return;
      await this.vm.resume();
      this.state = "running";
      this.hub.emit("RESUME");
    });
  }

  reset(): Promise<void> {
    return this.serial(async () => {
      if (this.state === "shutdown") return;
      await this.vm.reset();
      this.hub.emit("RESET", { guest: false, reason: "host-qmp-system-reset" });
    });
  }

  powerdown(): Promise<void> {
    return this.serial(async () => {
      if (this.state === "shutdown") return;
      this.hub.emit("POWERDOWN");
      await this.vm.powerButton();
    });
  }

  vcpus(): Promise<VcpuState[]> {
    return this.vm.vcpus();
  }

  chardevs(): ChardevInfo[] {
    const list: ChardevInfo[] = [];
    const serial = this.config.serial;
    const filename = (() => {
      switch (serial.kind) {
        case "stdio":
          return "stdio";
        case "pty":
          return `pty:${this.ptyPath ?? ""}`;
        case "file":
          return `file:${serial.path}`;
        case "socket":
          return `unix:${serial.path},server=on`;
        case "none":
          return null;
      }
    })();
    if (filename !== null) list.push({ label: "serial0", filename, frontendOpen: true });
    const qmp = this.config.qmp;
    if (qmp !== undefined) {
      const address = qmp.kind === "unix" ? `unix:${qmp.path}` : `tcp:${qmp.host}:${qmp.port}`;
      list.push({ label: "compat_monitor0", filename: `${address},server=on`, frontendOpen: true });
    }
    return list;
  }

  /** Emits SHUTDOWN once and asks for the end (a native shutdown or a QMP quit). */
  shutdown(reason: ShutdownReason): void {
    if (this.state === "shutdown") return;
    this.state = "shutdown";
    this.hub.emit("SHUTDOWN", { guest: reason.guest, reason: reason.reason });
    this.onShutdown(reason);
  }

  onEvent(listener: EventListener): () => void {
    return this.hub.subscribe(listener);
  }

  private serial<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.queue.then(operation, operation);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
