// An in-memory stand-in for the native Vm, for unit tests of the control
// plane (Machine, QMP) without /dev/kvm. Never used by virga-vmm itself.
import type { VcpuInfo } from "@virga/native";
import type { VmConfig } from "../../config/vm-config";
import { Machine, type NativeVm } from "../machine";
import type { ShutdownReason } from "../control";

export class FakeNativeVm implements NativeVm {
  readonly calls: string[] = [];
  paused = true;

  constructor(private readonly cpus: number) {}

  start(paused = false): void {
    this.calls.push(`start(${paused})`);
    this.paused = paused;
  }
  pause(): void {
    this.calls.push("pause");
    this.paused = true;
  }
  resume(): void {
    this.calls.push("resume");
    this.paused = false;
  }
  reset(): void {
    this.calls.push("reset");
  }
  powerButton(): void {
    this.calls.push("powerButton");
  }
  vcpus(): VcpuInfo[] {
    return Array.from({ length: this.cpus }, (_, index) => ({
      index,
      apicId: index,
      threadId: 10000 + index,
      halted: false,
    }));
  }
  serialPtyPath(): string | null {
    return "/dev/pts/99";
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
    devices: [],
    serial: { kind: "pty" },
    daemonize: false,
    startPaused: false,
    ...overrides,
  };
}

/** A started Machine over a FakeNativeVm; shutdowns and errors are recorded. */
export function fakeMachine(config: VmConfig = testConfig()): {
  machine: Machine;
  native: FakeNativeVm;
  shutdowns: ShutdownReason[];
  errors: string[];
} {
  const native = new FakeNativeVm(config.smp.cpus);
  const shutdowns: ShutdownReason[] = [];
  const errors: string[] = [];
  const machine = new Machine(
    config,
    native,
    (reason) => shutdowns.push(reason),
    (message) => errors.push(message),
  );
  machine.start();
  return { machine, native, shutdowns, errors };
}
