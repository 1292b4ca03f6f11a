// The VM as the control plane sees it: the native Vm plus QMP's run state
// and events. Implements VmControl for the QMP commands.
import type { VcpuInfo, VmEvent } from "@virga/native";
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

/** The part of the native Vm this class uses (a fake stands in for it in tests). */
export interface NativeVm {
  start(paused?: boolean): void;
  pause(): void;
  resume(): void;
  reset(): void;
  powerButton(): void;
  vcpus(): VcpuInfo[];
  serialPtyPath(): string | null;
}

export class Machine implements VmControl {
  private state: RunStatus = "prelaunch";
  private readonly hub = new EventHub();
  readonly fds = new NamedFds();

  /** onShutdown ends the process; onError reports a fatal VMM error. */
  constructor(
    readonly config: VmConfig,
    private readonly vm: NativeVm,
    private readonly onShutdown: (reason: ShutdownReason) => void,
    private readonly onError: (message: string) => void,
  ) {}

  /** Starts the vCPU threads; with -S they wait in prelaunch for cont. */
  start(): void {
    this.vm.start(this.config.startPaused);
    this.state = this.config.startPaused ? "prelaunch" : "running";
  }

  /** Events from the native core (delivered on the JS thread). */
  handleNativeEvent(event: VmEvent): void {
    if (event.type === "shutdown") this.shutdown({ guest: true, reason: event.reason });
    else this.onError(event.message);
  }

  status(): RunStatus {
    return this.state;
  }

  pause(): void {
    if (this.state !== "running") return;
    this.vm.pause();
    this.state = "paused";
    this.hub.emit("STOP");
  }

  resume(): void {
    if (this.state !== "paused" && this.state !== "prelaunch") return;
    this.vm.resume();
    this.state = "running";
    this.hub.emit("RESUME");
  }

  reset(): void {
    if (this.state === "shutdown") return;
    this.vm.reset();
    this.hub.emit("RESET", { guest: false, reason: "host-qmp-system-reset" });
  }

  powerdown(): void {
    if (this.state === "shutdown") return;
    this.hub.emit("POWERDOWN");
    this.vm.powerButton();
  }

  vcpus(): VcpuState[] {
    return this.vm.vcpus().map((v) => ({
      index: v.index,
      apicId: v.apicId,
      threadId: v.threadId,
      halted: v.halted,
    }));
  }

  chardevs(): ChardevInfo[] {
    const list: ChardevInfo[] = [];
    const serial = this.config.serial;
    const filename = (() => {
      switch (serial.kind) {
        case "stdio":
          return "stdio";
        case "pty":
          return `pty:${this.vm.serialPtyPath() ?? ""}`;
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

  shutdown(reason: ShutdownReason): void {
    if (this.state === "shutdown") return;
    this.state = "shutdown";
    this.hub.emit("SHUTDOWN", { guest: reason.guest, reason: reason.reason });
    this.onShutdown(reason);
  }

  onEvent(listener: EventListener): () => void {
    return this.hub.subscribe(listener);
  }
}
