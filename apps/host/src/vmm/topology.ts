// vCPU index → (socket, core, thread), threads varying fastest, as QEMU and
// StratoVirt number them and as the native core builds APIC ids and CPUID
// topology leaves.
import type { Smp } from "../config/vm-config";

export interface CpuProps {
  "core-id": number;
  "socket-id": number;
  "thread-id": number;
}

export function cpuProps(smp: Smp, index: number): CpuProps {
  return {
    "core-id": Math.floor(index / smp.threads) % smp.cores,
    "socket-id": Math.floor(index / (smp.threads * smp.cores)),
    "thread-id": index % smp.threads,
  };
}

export function qomPath(index: number): string {
  return `/machine/unattached/device[${index}]`;
}
