// The VM process's device requests and answers (docs/devices.md), as the
// control plane and QMP commands see them. Arguments here are already
// checked and normalised by the QMP commands; the VM process checks them
// against the machine's state and answers with field-naming errors.
import type { MigrationInfo } from "./migration";

export interface BlockdevAddArgs {
  nodeName: string;
  filename: string;
  readOnly: boolean;
  direct: boolean;
}

export interface NetdevAddArgs {
  id: string;
  /** A tap by name, or a getfd name whose descriptor goes along. */
  ifname?: string;
  fdName?: string;
}

export interface DeviceAddArgs {
  id: string;
  kind: "block" | "net" | "vfio";
  /** The slot within its kind (0 = vda / eth0); absent: the first free one. */
  slot?: number;
  /** Which QMP argument gave the slot, for errors. */
  slotField?: "addr" | "lun";
  /** The backend's node-name / netdev id, and the argument that named it (none for vfio). */
  backend?: string;
  backendField?: "id" | "drive" | "netdev";
  mac?: string;
  /** q35: the root port's id (slot 0x0 of its bus). */
  bus?: string;
  /** vfio-pci: the host function, by address (DDDD:BB:SS.F) or sysfs directory. */
  host?: string;
  sysfsdev?: string;
}

export interface BlockSlotInfo {
  slot: number;
  addr: string;
  "guest-name": string;
  device: string | null;
  "node-name": string | null;
  file: string | null;
  "read-only": boolean;
  direct: boolean;
  size: number;
}

export interface NetSlotInfo {
  slot: number;
  addr: string;
  "guest-name": string;
  device: string | null;
  netdev: string | null;
  ifname: string | null;
  /** What the network sees. */
  mac: string;
  /** What the guest read at boot, when it differs (a clone restored with its own MAC). */
  "guest-mac"?: string;
  link: "up" | "down";
  "driver-ready": boolean;
  "rx-frames": number;
  "tx-frames": number;
  "rx-bytes": number;
  "tx-bytes": number;
  "rx-dropped": number;
  "tx-dropped": number;
  /** The driver's queue notifications served, per queue (docs/devices.md). */
  "tx-notifications": number;
  "rx-notifications": number;
  /** Used-buffer interrupts raised, per queue. */
  "tx-interrupts": number;
  "rx-interrupts": number;
  /** Transmitted frames the guest handed as TSO. */
  "tx-gso-frames": number;
  /** Times the tap had no room for a frame. */
  "tx-blocked": number;
}

/** virga-query-devices. */
export interface DevicesInfo {
  block: BlockSlotInfo[];
  net: NetSlotInfo[];
  balloon: { device: string; "driver-ready": boolean } | null;
  backends: {
    block: { "node-name": string; file: string; "read-only": boolean; direct: boolean }[];
    net: { id: string; ifname: string }[];
  };
}

/** virga-query-devices on q35 (docs/q35.md): root ports and PCI functions. */
export interface Q35DevicesInfo {
  machine: "q35";
  pci: Record<string, unknown>[];
  balloon: { device: string; "driver-ready": boolean } | null;
  backends: DevicesInfo["backends"];
}

/** virga-query-balloon. */
export interface BalloonInfo {
  actual: number;
  target: number;
  memory: number;
  stats: Record<string, number>;
  "stats-updated"?: number;
}

/** What writing a snapshot cost (the VM process's answer). */
export interface SnapshotResult {
  stateBytes: number;
  /** Guest RAM written; pages never touched are holes in the file. */
  memoryBytes: number;
  /** Guest RAM in all. */
  totalBytes: number;
  ms: number;
}

/** What the VM process does with devices (the VmmChannel; a fake in unit tests). */
export interface NativeDevices {
  blockdevAdd(args: BlockdevAddArgs): Promise<void>;
  blockdevDel(nodeName: string): Promise<void>;
  /** `fd`, when given, travels with the request (SCM_RIGHTS). */
  netdevAdd(args: NetdevAddArgs, fd?: number): Promise<void>;
  netdevDel(id: string): Promise<void>;
  deviceAdd(args: DeviceAddArgs): Promise<void>;
  deviceDel(id: string): Promise<void>;
  balloon(bytes: number): Promise<void>;
  queryBalloon(): Promise<BalloonInfo>;
  devices(): Promise<DevicesInfo | Q35DevicesInfo>;
  /** Writes the paused VM into `dir` (docs/snapshots.md). */
  snapshot(dir: string): Promise<SnapshotResult>;
  /** Starts a live migration to tcp:/unix: (docs/migration.md); progress comes as events. */
  migrate(args: { uri: string; downtimeLimitMs: number; maxBandwidth: number }): Promise<void>;
  migrateCancel(): Promise<void>;
  migrateInfo(): Promise<MigrationInfo>;
}
