// A new definition's starting point (the form fills in the kernel).
import { MIB, type VmConfig } from "./vm-config";

export const EMPTY_CONFIG: VmConfig = {
  machine: "microvm",
  kernel: "",
  append: "console=ttyS0",
  bootEntry: "linux64",
  smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
  memoryBytes: 128 * MIB,
  drives: [],
  netdevs: [],
  devices: [],
  serial: { kind: "stdio" },
  daemonize: false,
  startPaused: false,
};
