// What the control plane (QMP commands) may do with a running VM.
// vmm/machine.ts implements it over the VM process's channel; unit tests use
// a fake.
import type { VmConfig } from "../config/vm-config";
import type { QmpEventRecord } from "../qmp/wire";
import type {
  BalloonInfo,
  BlockdevAddArgs,
  DeviceAddArgs,
  DevicesInfo,
  Q35DevicesInfo,
  NetdevAddArgs,
} from "./device-types";
import type { MigrationInfo } from "./migration";
import type { NamedFds } from "./named-fds";

/** QMP's RunState values that virga-vmm uses so far. */
export type RunStatus =
  | "prelaunch"
  | "running"
  | "paused"
  | "shutdown"
  /** Waiting for an incoming live migration (-incoming tcp:/unix:). */
  | "inmigrate"
  /** A migration source paused for its final copy. */
  | "finish-migrate"
  /** A migration source after it completed: the guest runs elsewhere. */
  | "postmigrate";

export type ShutdownReason =
  | { guest: true; reason: "guest-shutdown" | "guest-reset" }
  | { guest: false; reason: "host-qmp-quit" | "host-signal" | "migration" };

export interface VcpuState {
  index: number;
  apicId: number;
  threadId: number;
  halted: boolean;
  /** The vCPU thread's run loop (native/src/vcpu/run_stats.h). */
  stats: VcpuRunStats;
}

export interface VcpuRunStats {
  /** Returns from KVM_RUN to virga-vmm, and those by cause. */
  exits: number;
  ioExits: number;
  mmioExits: number;
  signalExits: number;
  /** Inside KVM_RUN: guest code, the kernel's own exit handling, halts. */
  runNs: number;
  /** In virga-vmm between a return from KVM_RUN and the next entry. */
  exitHandlingNs: number;
  /** From the VMM's start to this vCPU's first guest entry; 0 before it. */
  startToFirstEntryNs: number;
}

export interface ChardevInfo {
  label: string;
  filename: string;
  frontendOpen: boolean;
}

export type EventListener = (record: QmpEventRecord) => void;

export interface VmControl {
  readonly config: VmConfig;
  /** Descriptors handed over with QMP getfd, by name. */
  readonly fds: NamedFds;
  status(): RunStatus;
  /** Pauses every vCPU; emits STOP (before resolving) when the VM was running. */
  pause(): Promise<void>;
  /** Resumes from paused or prelaunch; emits RESUME. */
  resume(): Promise<void>;
  /** Machine reset (the guest reboots; paused stays paused); emits RESET. */
  reset(): Promise<void>;
  /** Presses the ACPI power button; emits POWERDOWN. The guest decides what follows. */
  powerdown(): Promise<void>;
  /** The online vCPUs. */
  vcpus(): Promise<VcpuState[]>;
  chardevs(): ChardevInfo[];
  /** Emits SHUTDOWN and ends the VM process (cleanly: exit code 0). */
  shutdown(reason: ShutdownReason): void;
  /** Subscribes to QMP events; returns the unsubscribe function. */
  onEvent(listener: EventListener): () => void;

  // Devices (docs/devices.md). Each rejects with a QmpError naming the field.
  blockdevAdd(args: BlockdevAddArgs): Promise<void>;
  blockdevDel(nodeName: string): Promise<void>;
  /** With fdName, the descriptor stored by getfd under that name is used (and consumed on success). */
  netdevAdd(args: NetdevAddArgs): Promise<void>;
  netdevDel(id: string): Promise<void>;
  deviceAdd(args: DeviceAddArgs): Promise<void>;
  /**
   * Synchronous on the microvm: emits DEVICE_DELETED before resolving. On
   * q35 the VM process emits it later, once the guest has let go.
   */
  deviceDel(id: string): Promise<void>;
  balloon(bytes: number): Promise<void>;
  queryBalloon(): Promise<BalloonInfo>;
  devices(): Promise<DevicesInfo | Q35DevicesInfo>;

  /**
   * migrate file:<dir>: pauses a running VM (STOP) and writes a snapshot;
   * the VM stays paused. Resolves when it is written, rejects with the
   * reason (query-migrate then says failed, with error-desc).
   */
  snapshot(dir: string): Promise<void>;
  /** migrate tcp:/unix:: starts a live migration in the background. */
  migrate(uri: string): Promise<void>;
  /** Stops a live migration; the guest keeps running here. */
  migrateCancel(): Promise<void>;
  migrationInfo(): Promise<MigrationInfo>;
  migrationParameters(): MigrationParameters;
  setMigrationParameters(parameters: Partial<MigrationParameters>): void;
}

/** QEMU's migrate-set-parameters names. */
export interface MigrationParameters {
  /** Milliseconds the guest may be paused for the final copy. */
  "downtime-limit": number;
  /** Bytes per second; 0 for no limit. */
  "max-bandwidth": number;
}
