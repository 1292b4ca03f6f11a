// An in-memory stand-in for the VM process, for unit tests of the control
// plane (Machine, QMP) without /dev/kvm. Never used by virga-vmm itself.
import type { VmConfig } from "../../config/vm-config";
import { Machine, type NativeVm } from "../machine";
import type { ShutdownReason, VcpuState } from "../control";
import type { MigrationInfo } from "../migration";
import type {
  BalloonInfo,
  BlockdevAddArgs,
  DeviceAddArgs,
  DevicesInfo,
  NetdevAddArgs,
  SnapshotResult,
} from "../device-types";

export class FakeNativeVm implements NativeVm {
  readonly calls: string[] = [];

  constructor(private readonly cpus: number) {}

  pause(): Promise<void> {
    this.calls.push("pause");
    return Promise.resolve();
  }
  resume(): Promise<void> {
    this.calls.push("resume");
    return Promise.resolve();
  }
  reset(): Promise<void> {
    this.calls.push("reset");
    return Promise.resolve();
  }
  powerButton(): Promise<void> {
    this.calls.push("powerButton");
    return Promise.resolve();
  }
  /** Device requests as the VM process would receive them. */
  readonly requests: { op: string; args: unknown; fd?: number }[] = [];

  private record(op: string, args: unknown, fd?: number): Promise<void> {
    this.requests.push(fd === undefined ? { op, args } : { op, args, fd });
    return Promise.resolve();
  }
  blockdevAdd(args: BlockdevAddArgs): Promise<void> {
    return this.record("blockdev-add", args);
  }
  blockdevDel(nodeName: string): Promise<void> {
    return this.record("blockdev-del", { nodeName });
  }
  netdevAdd(args: NetdevAddArgs, fd?: number): Promise<void> {
    return this.record("netdev-add", args, fd);
  }
  netdevDel(id: string): Promise<void> {
    return this.record("netdev-del", { id });
  }
  deviceAdd(args: DeviceAddArgs): Promise<void> {
    return this.record("device-add", args);
  }
  deviceDel(id: string): Promise<void> {
    return this.record("device-del", { id });
  }
  balloon(bytes: number): Promise<void> {
    return this.record("balloon", { bytes });
  }
  queryBalloon(): Promise<BalloonInfo> {
    return Promise.resolve({ actual: 1 << 28, target: 1 << 28, memory: 1 << 28, stats: {} });
  }
  snapshot(dir: string): Promise<SnapshotResult> {
    this.requests.push({ op: "snapshot", args: { dir } });
    return Promise.resolve({ stateBytes: 1000, memoryBytes: 2000, totalBytes: 1 << 28, ms: 3 });
  }
  migrate(args: { uri: string; downtimeLimitMs: number; maxBandwidth: number }): Promise<void> {
    return this.record("migrate", args);
  }
  migrateCancel(): Promise<void> {
    return this.record("migrate-cancel", {});
  }
  migrateInfo(): Promise<MigrationInfo> {
    return Promise.resolve({ status: "active" });
  }
  devices(): Promise<DevicesInfo> {
    return Promise.resolve({ block: [], net: [], balloon: null, backends: { block: [], net: [] } });
  }

  vcpus(): Promise<VcpuState[]> {
    return Promise.resolve(
      Array.from({ length: this.cpus }, (_, index) => ({
        index,
        apicId: index,
        threadId: 10000 + index,
        halted: false,
        stats: {
          exits: 100 + index,
          ioExits: 60 + index,
          mmioExits: 30 + index,
          signalExits: index,
          runNs: 5000000 + index,
          exitHandlingNs: 40000 + index,
          startToFirstEntryNs: 2000000 + index,
        },
      })),
    );
  }
}

export function testConfig(overrides: Partial<VmConfig> = {}): VmConfig {
  return {
    machine: "microvm",
    kernel: "/k",
    append: "",
    bootEntry: "linux64",
    smp: { cpus: 2, maxCpus: 4, sockets: 2, cores: 2, threads: 1 },
    memoryBytes: 256 * 1024 * 1024,
    drives: [],
    netdevs: [],
    devices: [],
    serial: { kind: "pty" },
    daemonize: false,
    startPaused: false,
    ...overrides,
  };
}

/** A Machine over a FakeNativeVm with a pty console; shutdowns are recorded. */
export function fakeMachine(config: VmConfig = testConfig()): {
  machine: Machine;
  native: FakeNativeVm;
  shutdowns: ShutdownReason[];
} {
  const native = new FakeNativeVm(config.smp.cpus);
  const shutdowns: ShutdownReason[] = [];
  const machine = new Machine(config, native, "/dev/pts/99", (reason) => shutdowns.push(reason));
  return { machine, native, shutdowns };
}
