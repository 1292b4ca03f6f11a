// Keeping the portal's Vm rows in step with what a host's virgad reports.
// Every portal sharing the database does this for every host, so each write
// here tolerates another portal making the same one at the same moment.
import type { Host, Vm } from "@virga/prisma";
import { db, isRecordGone, isUniqueViolation } from "../db";
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

function fieldsOf(summary: VmSummary) {
  return {
    name: summary.name,
    clonedFrom: summary.clonedFrom,
    state: summary.state,
    pid: summary.pid,
    config: JSON.stringify(summary.config),
    startedAt: summary.startedAt === null ? null : new Date(summary.startedAt),
    stoppedAt: summary.exit === null ? null : new Date(summary.exit.at),
  };
}

async function updateRow(
  host: Host,
  summary: VmSummary,
  definitionId?: string | null,
  retry = true,
): Promise<Vm | null> {
  const existing = await db().vm.findUnique({
    where: { hostId_hostVmId: { hostId: host.id, hostVmId: summary.id } },
  });
  if (existing === null) return null;
  // The watcher may have imported the VM from its VM_CREATED event before
  // the portal's own create call returned: keep the definition it came from.
  const definition = definitionId && existing.definitionId === null ? { definitionId } : {};
  try {
    return await db().vm.update({
      where: { id: existing.id },
      data: { ...fieldsOf(summary), ...definition },
    });
  } catch (error) {
    // Folded into a migrating VM's row meanwhile (rows.ts, moveVmRow): update that one.
    if (!isRecordGone(error) || !retry) throw error;
    return updateRow(host, summary, definitionId, false);
  }
}

/** Creates or updates the row for a VM virgad reported. */
export async function upsertVm(host: Host, summary: VmSummary, definitionId?: string | null) {
  const updated = await updateRow(host, summary, definitionId);
  if (updated !== null) return updated;
  // The VM a migration the portal started brought here: its row moves.
  const migration = await arrivingRow(host, summary.id);
  if (migration !== null) {
    await moveVmRow(migration);
    const moved = await updateRow(host, summary, definitionId);
    if (moved !== null) return moved;
  }
  try {
    return await db().vm.create({
      data: {
        ...fieldsOf(summary),
        id: await portalIdFor(host, summary.id),
        hostId: host.id,
        hostVmId: summary.id,
        definitionId: definitionId ?? null,
        createdAt: new Date(summary.createdAt),
      },
    });
  } catch (error) {
    // Another portal (or this one's watcher) created it in between.
    if (!isUniqueViolation(error)) throw error;
    const row = await updateRow(host, summary, definitionId);
    if (row === null) throw error;
    return row;
  }
}

/**
 * Brings all rows of a host in line with virgad's list, taken at `listedAt`;
 * returns the VMs gone from it. A row written since then is kept: it is a
 * VM created (through another portal, or this one) after the list was made.
 * A VM migrating away is still this host's until its migration row says
 * otherwise.
 */
export async function syncHostVms(host: Host, summaries: readonly VmSummary[], listedAt: Date) {
  for (const summary of summaries) {
    if (!isArriving(summary)) await upsertVm(host, summary);
  }
  const present = new Set(summaries.map((summary) => summary.id));
  const rows = await db().vm.findMany({
    where: { hostId: host.id, migrations: { none: { status: { in: IN_FLIGHT } } } },
  });
  const gone = rows.filter((row) => !present.has(row.hostVmId) && row.updatedAt < listedAt);
  if (gone.length > 0) {
    await db().vm.deleteMany({
      where: { id: { in: gone.map((row) => row.id) }, updatedAt: { lt: listedAt } },
    });
  }
  return gone;
}
