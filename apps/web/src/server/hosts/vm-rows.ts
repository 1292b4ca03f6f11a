// Keeping the portal's Vm rows in step with what a host's virgad reports.
import type { Host } from "@virga/prisma";
import { db } from "../db";
import { arrivingRow, IN_FLIGHT, moveVmRow } from "../migrations/rows";
import type { VmSummary } from "./virgad";

/** A VM still waiting for its guest at a migration's destination: not a VM of that host yet. */
export function isArriving(summary: VmSummary): boolean {
  return summary.migration?.role === "destination";
}

/** The portal id for a VM found on a host: its virgad id, unless another host took it. */
async function portalIdFor(host: Host, hostVmId: string): Promise<string> {
  const taken = await db().vm.findUnique({ where: { id: hostVmId } });
  if (taken === null || (taken.hostId === host.id && taken.hostVmId === hostVmId)) return hostVmId;
  return `${hostVmId}-${host.id.slice(-6)}`.slice(0, 63);
}

/** Creates or updates the row for a VM virgad reported. */
export async function upsertVm(host: Host, summary: VmSummary, definitionId?: string | null) {
  const existing = await db().vm.findUnique({
    where: { hostId_hostVmId: { hostId: host.id, hostVmId: summary.id } },
  });
  const fields = {
    name: summary.name,
    clonedFrom: summary.clonedFrom,
    state: summary.state,
    pid: summary.pid,
    config: JSON.stringify(summary.config),
    startedAt: summary.startedAt === null ? null : new Date(summary.startedAt),
    stoppedAt: summary.exit === null ? null : new Date(summary.exit.at),
  };
  if (existing === null) {
    // The VM a migration the portal started brought here: its row moves.
    const migration = await arrivingRow(host, summary.id);
    if (migration !== null) {
      await moveVmRow(migration);
      return db().vm.update({
        where: { hostId_hostVmId: { hostId: host.id, hostVmId: summary.id } },
        data: fields,
      });
    }
  }
  if (existing !== null) {
    // The watcher may have imported the VM from its VM_CREATED event before
    // the portal's own create call returned: keep the definition it came from.
    const definition = definitionId && existing.definitionId === null ? { definitionId } : {};
    return db().vm.update({ where: { id: existing.id }, data: { ...fields, ...definition } });
  }
  return db().vm.create({
    data: {
      ...fields,
      id: await portalIdFor(host, summary.id),
      hostId: host.id,
      hostVmId: summary.id,
      definitionId: definitionId ?? null,
      createdAt: new Date(summary.createdAt),
    },
  });
}

/** Brings all rows of a host in line with virgad's list; returns the VMs gone from it. */
export async function syncHostVms(host: Host, summaries: readonly VmSummary[]) {
  for (const summary of summaries) {
    if (!isArriving(summary)) await upsertVm(host, summary);
  }
  const present = new Set(summaries.map((summary) => summary.id));
  // A VM migrating away is still this host's until its migration row says otherwise.
  const rows = await db().vm.findMany({
    where: { hostId: host.id, migrations: { none: { status: { in: IN_FLIGHT } } } },
  });
  const gone = rows.filter((row) => !present.has(row.hostVmId));
  if (gone.length > 0) {
    await db().vm.deleteMany({ where: { id: { in: gone.map((row) => row.id) } } });
  }
  return gone;
}
