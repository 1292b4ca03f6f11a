// The contract between the TypeScript control plane and the C++ VMM core.
// Everything here is plain data; the data path (vCPUs, devices, serial)
// never calls back into JavaScript except through `onEvent`.

export type SerialBackend =
  | { kind: "stdio" }
  | { kind: "pty" }
  | { kind: "file"; path: string }
  | { kind: "socket"; path: string } // unix socket server, nowait
  | { kind: "none" };

export interface NativeDisk {
  /** microvm block slot, 0..5 (slot 0 is the guest's vda). */
  slot: number;
  id: string;
  path: string;
  readOnly: boolean;
  direct: boolean;
}

export interface NativeVmConfig {
  memoryBytes: number;
  /** vCPUs online at boot. */
  cpus: number;
  maxCpus: number;
  sockets: number;
  cores: number;
  threads: number;
  kernel: string;
  initrd?: string;
  /** Kernel command line from -append; the core appends virtio_mmio.device= entries. */
  cmdline: string;
  /** "linux64": 64-bit Linux boot protocol (boot_params in RSI); "pvh": PVH 32-bit entry. */
  bootEntry: "linux64" | "pvh";
  serial: SerialBackend;
  disks: NativeDisk[];
}

export type VmEvent =
  /** Guest powered off (ACPI sleep register) or reset (i8042 / triple fault with reboot). */
  | { type: "shutdown"; reason: "guest-shutdown" | "guest-reset" }
  /** The VMM cannot continue: emulation failure, KVM error, I/O thread failure. */
  | { type: "error"; message: string };

export interface VcpuInfo {
  index: number;
  apicId: number;
  /** Host thread id (appears under /proc/<pid>/task/). */
  threadId: number;
  halted: boolean;
}

export class Vm {
  /** Creates the VM, loads the kernel, builds devices. Throws Error with a
   *  clear message ("/dev/kvm not present: ...", "failed to open disk ...: ..."). */
  constructor(config: NativeVmConfig, onEvent: (event: VmEvent) => void);
  /** Starts vCPU threads. With paused=true the threads start but do not run guest code. */
  start(paused?: boolean): void;
  /** Returns once every vCPU has left KVM_RUN and waits. Idempotent. */
  pause(): void;
  resume(): void;
  /** Machine reset (QMP system_reset): vCPUs and devices to power-on state, kernel reloaded; keeps the paused state. */
  reset(): void;
  /** Presses the ACPI power button (QMP system_powerdown); the guest decides what to do. */
  powerButton(): void;
  readonly paused: boolean;
  vcpus(): VcpuInfo[];
  /** The pty slave path when serial.kind is "pty", else null. */
  serialPtyPath(): string | null;
  /** The final command line passed to the guest. */
  readonly cmdline: string;
  /** Stops all threads and releases KVM, memory and files. Idempotent. */
  destroy(): void;
}

/** Reads a connected unix socket (given by fd; a duplicate is kept) with
 *  recvmsg, so descriptors sent with SCM_RIGHTS reach JS (QMP getfd).
 *  The received fds belong to the callee. */
export class SocketReader {
  constructor(fd: number, onData: (data: Buffer, fds: number[]) => void, onClose: (errno: number) => void);
  pause(): void;
  resume(): void;
  /** Stops reading; idempotent. Pending callbacks may still arrive. */
  close(): void;
}

/** Facts about this host's KVM; never throws (present=false with a reason). */
export function kvmInfo(): { present: boolean; reason?: string; apiVersion?: number; capabilities: Record<string, boolean> };

/** Absolute path of the built probe guest ELF (native/probe-guest/build/probe.elf). */
export const probeGuestPath: string;
