// The VM as the control plane sees it: the VM process (over its channel)
// plus QMP's run state and events. Implements VmControl for the QMP commands.
// Operations run one at a time, so concurrent clients see whole transitions.
import type { VmConfig } from "../config/vm-config";
import type {
  ChardevInfo,
  EventListener,
  MigrationParameters,
  RunStatus,
  ShutdownReason,
  VcpuState,
  VmControl,
} from "./control";
import type {
  BalloonInfo,
  BlockdevAddArgs,
  DeviceAddArgs,
  DevicesInfo,
  Q35DevicesInfo,
  NativeDevices,
  NetdevAddArgs,
} from "./device-types";
import { EventHub } from "./events";
import { MigrationTracker, type MigrationInfo } from "./migration";
import { NamedFds, closeQuietly } from "./named-fds";
import { genericError } from "../qmp/wire";

/** What the VM process does on request (a fake stands in for it in tests). */
export interface NativeVm extends NativeDevices {
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
  private readonly migration = new MigrationTracker((status) => {
    this.hub.emit("MIGRATION", { status });
  });
  private readonly parameters: MigrationParameters = { "downtime-limit": 50, "max-bandwidth": 0 };

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
    status: "prelaunch" | "paused" | "running" | "inmigrate" = config.startPaused
      ? "prelaunch"
      : "running",
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
    if (this.migration.active) {
      return Promise.reject(
        genericError("system_reset is refused while a migration is in progress"),
      );
    }
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

  /** An event the VM process raised (BALLOON_CHANGED), for every client. */
  emit(name: string, data: Record<string, unknown>): void {
    this.hub.emit(name, data);
  }

  // ---- devices (docs/devices.md); in order with the lifecycle operations ----

  blockdevAdd(args: BlockdevAddArgs): Promise<void> {
    if (this.migration.active)
      return Promise.reject(
        genericError(`blockdev-add is refused while a migration is in progress`),
      );
    return this.serial(() => this.vm.blockdevAdd(args));
  }

  blockdevDel(nodeName: string): Promise<void> {
    if (this.migration.active)
      return Promise.reject(
        genericError(`blockdev-del is refused while a migration is in progress`),
      );
    return this.serial(() => this.vm.blockdevDel(nodeName));
  }

  netdevAdd(args: NetdevAddArgs): Promise<void> {
    if (this.migration.active)
      return Promise.reject(genericError(`netdev_add is refused while a migration is in progress`));
    return this.serial(async () => {
      const name = args.fdName;
      if (name === undefined) return this.vm.netdevAdd(args);
      const fd = this.fds.take(name);
      if (fd === undefined) {
        throw genericError(`fd: no file descriptor named '${name}' (send it with getfd first)`);
      }
      try {
        await this.vm.netdevAdd(args, fd);
      } catch (error) {
        // Nothing changed: the descriptor stays where getfd put it.
        this.fds.put(name, fd);
        throw error;
      }
      // The VM process holds its own copy now.
      closeQuietly(fd);
    });
  }

  netdevDel(id: string): Promise<void> {
    if (this.migration.active)
      return Promise.reject(genericError(`netdev_del is refused while a migration is in progress`));
    return this.serial(() => this.vm.netdevDel(id));
  }

  deviceAdd(args: DeviceAddArgs): Promise<void> {
    if (this.migration.active)
      return Promise.reject(genericError(`device_add is refused while a migration is in progress`));
    return this.serial(() => this.vm.deviceAdd(args));
  }

  deviceDel(id: string): Promise<void> {
    if (this.migration.active)
      return Promise.reject(genericError(`device_del is refused while a migration is in progress`));
    return this.serial(async () => {
      await this.vm.deviceDel(id);
      // The seed's microvm example: the event, then the return. q35's
      // comes from the VM process once the guest has let go of the slot.
      if (this.config.machine === "microvm")
        this.hub.emit("DEVICE_DELETED", { device: id, path: id });
    });
  }

  balloon(bytes: number): Promise<void> {
    return this.serial(() => this.vm.balloon(bytes));
  }

  queryBalloon(): Promise<BalloonInfo> {
    return this.vm.queryBalloon();
  }

  devices(): Promise<DevicesInfo | Q35DevicesInfo> {
    return this.vm.devices();
  }

  /**
   * A snapshot's restore maps its RAM privately from the memory file: it
   * could not give a clone shared or file-backed RAM back. Refused before
   * the VM is paused (docs/snapshots.md); live migration copies such RAM.
   */
  private ramUnsavable(): Error | null {
    const { memShare, memPath } = this.config;
    let why: string;
    if (memPath !== undefined && memShare === true) {
      why = `guest RAM is file-backed and shared (-mem-path ${memPath}, -mem-share)`;
    } else if (memPath !== undefined) {
      why = `guest RAM is file-backed (-mem-path ${memPath})`;
    } else if (memShare === true) {
      why = "guest RAM is shared (-mem-share)";
    } else {
      return null;
    }
    return genericError(`snapshot: ${why}; only anonymous guest RAM can be saved`);
  }

  /**
   * A passed-through device's state is in the host's hardware (docs/q35.md):
   * refused before the VM is paused, for a snapshot and a live migration alike.
   */
  private pciUnsavable(): Error | null {
    const vfio = this.config.devices.find((device) => device.driver === "vfio-pci");
    if (vfio === undefined) return null;
    return genericError(
      `vfio-pci device '${vfio.id}' is passed through: a VM with VFIO devices cannot be snapshotted or migrated`,
    );
  }

  /**
   * A device whose device_del the guest has not finished is neither the
   * guest's nor gone, and no restore could put it back so: a snapshot is
   * refused before the pause (the VM process refuses a migration itself,
   * while the VM runs).
   */
  private async unplugPending(): Promise<Error | null> {
    if (!this.config.devices.some((device) => device.driver === "pcie-root-port")) return null;
    const devices = await this.vm.devices();
    if (!("machine" in devices)) return null;
    const port = devices.pci.find((entry) => entry["unplug-pending"] === true);
    if (port === undefined) return null;
    return genericError(
      `the VM cannot be saved or migrated: device '${String(port.device)}' in root port ` +
        `'${String(port.id)}' is being unplugged; wait for DEVICE_DELETED`,
    );
  }

  snapshot(dir: string): Promise<void> {
    const unsavable = this.ramUnsavable() ?? this.pciUnsavable();
    if (unsavable !== null) return Promise.reject(unsavable);
    if (this.migration.active)
      return Promise.reject(genericError("a migration is already in progress"));
    this.migration.begin(false);
    return this.serial(async () => {
      try {
        if (this.state === "shutdown") throw genericError("the VM has shut down");
        const unplugging = await this.unplugPending();
        if (unplugging !== null) throw unplugging;
        if (this.state === "running") {
          await this.vm.pause();
          this.state = "paused";
          this.hub.emit("STOP");
        }
        this.migration.running();
        this.migration.completedToFile(await this.vm.snapshot(dir));
      } catch (error) {
        this.migration.failed(error instanceof Error ? error.message : String(error));
        throw error;
      }
    });
  }

  async migrationInfo(): Promise<MigrationInfo> {
    if (!this.migration.live || this.state === "inmigrate") return this.migration.snapshotInfo();
    return this.migration.merge(await this.vm.migrateInfo());
  }

  migrate(uri: string): Promise<void> {
    const unsavable = this.pciUnsavable();
    if (unsavable !== null) return Promise.reject(unsavable);
    if (this.migration.active)
      return Promise.reject(genericError("a migration is already in progress"));
    if (this.state !== "running" && this.state !== "paused") {
      return Promise.reject(genericError(`a VM in state '${this.state}' cannot migrate`));
    }
    return this.serial(async () => {
      this.migration.begin(true);
      try {
        await this.vm.migrate({
          uri,
          downtimeLimitMs: this.parameters["downtime-limit"],
          maxBandwidth: this.parameters["max-bandwidth"],
        });
      } catch (error) {
        this.migration.changed("failed", error instanceof Error ? error.message : String(error));
        throw error;
      }
    });
  }

  migrateCancel(): Promise<void> {
    return this.vm.migrateCancel();
  }

  migrationParameters(): MigrationParameters {
    return { ...this.parameters };
  }

  setMigrationParameters(parameters: Partial<MigrationParameters>): void {
    Object.assign(this.parameters, parameters);
  }

  /** The VM process's news of a live migration (docs/migration.md). */
  onMigrationEvent(event: {
    status: string;
    error?: string;
    incoming?: boolean;
    resumed?: boolean;
  }): void {
    if (event.incoming === true) {
      this.migration.live = false;
      if (event.status === "active") this.migration.changed("active");
      if (event.status === "completed") {
        this.state = event.resumed === true ? "running" : "prelaunch";
        this.migration.changed("completed");
        if (event.resumed === true) this.hub.emit("RESUME");
      }
      return;
    }
    switch (event.status) {
      case "active":
        this.migration.changed("active");
        break;
      case "paused":
        // The final copy: QEMU's finish-migrate, with a STOP.
        if (this.state === "running") {
          this.state = "finish-migrate";
          this.hub.emit("STOP");
        }
        this.migration.changed("device");
        break;
      case "resumed":
        this.state = "running";
        this.hub.emit("RESUME");
        break;
      case "completed":
        this.state = "postmigrate";
        this.migration.changed("completed");
        break;
      case "failed":
      case "cancelled":
        if (this.state === "finish-migrate") this.state = "paused";
        this.migration.changed(event.status, event.error);
        break;
    }
  }

  private serial<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.queue.then(operation, operation);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
