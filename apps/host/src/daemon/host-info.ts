// host.info: what this machine offers and what its VMs use.
import os from "node:os";
import { VERSION } from "../version";
import { rssBytes } from "./proc";
import type { ManagedVm, VmState } from "./vm";

export interface KvmFacts {
  present: boolean;
  reason?: string;
  apiVersion?: number;
  capabilities: Record<string, boolean>;
}

export interface HostInfo {
  hostname: string;
  cpus: number;
  memoryBytes: number;
  kvm: KvmFacts;
  version: string;
  vms: { id: string; state: VmState; pid: number | null; rssBytes: number | null }[];
}

export function kvmFacts(): KvmFacts {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const native = require("@virga/native") as typeof import("@virga/native");
    return native.kvmInfo();
  } catch (error) {
    return {
      present: false,
      reason: `native addon unavailable: ${error instanceof Error ? error.message : String(error)}`,
      capabilities: {},
    };
  }
}

export function hostInfo(vms: readonly ManagedVm[], kvm: KvmFacts): HostInfo {
  return {
    hostname: os.hostname(),
    cpus: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    kvm,
    version: VERSION,
    vms: vms.map((vm) => {
      const pid = vm.processId;
      return { id: vm.id, state: vm.state, pid, rssBytes: pid === null ? null : rssBytes(pid) };
    }),
  };
}
