// Where a new VM goes when the caller names no host: the reachable host with
// KVM that has the most free memory (its memory less what its running,
// paused or starting VMs were given), if that is enough for the VM. Ties go
// to the host with fewer live VMs, then to the first by name. Two placements
// at the same moment may pick the same host: each sees the other's VM only
// once virgad has it.
import { TRPCError } from "@trpc/server";
import type { Host } from "@virga/prisma";
import { db } from "../db";
import { probeHost, type Probe } from "../hosts/capacity";

const MIB = 1024 * 1024;

function mib(bytes: number): string {
  return `${Math.floor(bytes / MIB)} MiB`;
}

/** The host for a VM of `memoryBytes` among probed hosts (in name order). */
export function chooseHost<H extends { name: string }>(
  probes: readonly (Probe & { host: H })[],
  memoryBytes: number,
): H {
  const reasons: string[] = [];
  let best: (Probe & { host: H })["capacity"] = null;
  let chosen: H | null = null;
  for (const { host, capacity, error } of probes) {
    if (capacity === null) reasons.push(error);
    else if (!capacity.kvm) reasons.push(`'${host.name}' has no KVM`);
    else if (capacity.freeBytes < memoryBytes)
      reasons.push(`'${host.name}' has ${mib(capacity.freeBytes)} free`);
    else if (
      best === null ||
      capacity.freeBytes > best.freeBytes ||
      (capacity.freeBytes === best.freeBytes && capacity.liveVms < best.liveVms)
    ) {
      best = capacity;
      chosen = host;
    }
  }
  if (chosen !== null) return chosen;
  throw new TRPCError({
    code: "PRECONDITION_FAILED",
    message:
      probes.length === 0
        ? "hostId: no host is registered"
        : `hostId: no host can take a VM of ${mib(memoryBytes)}: ${reasons.join("; ")}`,
  });
}

export async function placeVm(memoryBytes: number): Promise<Host> {
  const hosts = await db().host.findMany({ orderBy: { name: "asc" } });
  const probes = await Promise.all(
    hosts.map(async (host) => ({ host, ...(await probeHost(host)) })),
  );
  return chooseHost(probes, memoryBytes);
}
