// What a host can take: its live facts from virgad (host.info) and the
// memory its VMs were given (vm.list), asked together with a time limit so
// one unreachable host does not hold up a page or a placement.
import type { Host } from "@virga/prisma";
import { hostError, virgad, type HostInfo, type VmSummary } from "./virgad";

const PROBE_TIMEOUT_MS = 3000;
/** States in which a VM holds its guest memory (virgad's LIVE_STATES). */
const HOLDS_MEMORY = new Set(["running", "paused", "prelaunch"]);

export interface Capacity {
  cpus: number;
  memoryBytes: number;
  /** Guest memory of the VMs that are running, paused or starting. */
  committedBytes: number;
  /** memoryBytes - committedBytes (never below 0): what placement compares. */
  freeBytes: number;
  vms: number;
  liveVms: number;
  kvm: boolean;
}

export function capacityOf(info: HostInfo, summaries: readonly VmSummary[]): Capacity {
  const live = summaries.filter((vm) => HOLDS_MEMORY.has(vm.state));
  const committedBytes = live.reduce((sum, vm) => sum + vm.config.memoryBytes, 0);
  return {
    cpus: info.cpus,
    memoryBytes: info.memoryBytes,
    committedBytes,
    freeBytes: Math.max(0, info.memoryBytes - committedBytes),
    vms: summaries.length,
    liveVms: live.length,
    kvm: info.kvm.present,
  };
}

export type Probe =
  | { info: HostInfo; capacity: Capacity; error: null }
  | { info: null; capacity: null; error: string };

/** host.info and vm.list of one host, or why it did not answer within 3 s. */
export async function probeHost(host: Host): Promise<Probe> {
  try {
    const client = virgad(host);
    const [info, summaries] = await Promise.race([
      Promise.all([client.host.info.query(), client.vm.list.query()]),
      new Promise<never>((_, reject) =>
        setTimeout(() => {
          reject(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`));
        }, PROBE_TIMEOUT_MS).unref(),
      ),
    ]);
    return { info, capacity: capacityOf(info, summaries), error: null };
  } catch (error) {
    return { info: null, capacity: null, error: hostError(error, host.name).message };
  }
}
