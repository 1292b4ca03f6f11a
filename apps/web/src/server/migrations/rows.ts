// Migration rows and the Vm row that moves with them. The portal starts a
// migration with its own row id as virgad's migrationId; the source host's
// VM_MIGRATION events (watcher.ts) then carry the status and QEMU's figures
// into the row. When it completes, the VM's row moves to the destination
// host: same portal id, so its page, events and history stay one VM.
import type { Host, Migration } from "@virga/prisma";
import type { MigrationInfo, VmSummary } from "@virga/host/src/daemon/router";
import { db } from "../db";
import { virgad } from "../hosts/virgad";

/** Where a migration is, in the row's words (virgad's setup/active/device are all "active"). */
function rowStatus(status: MigrationInfo["status"]): string {
  return status === "completed" || status === "failed" || status === "cancelled"
    ? status
    : "active";
}

export const IN_FLIGHT = ["pending", "active"];

/** The figures of a VM_MIGRATION event (or vm.migration's answer) into the row. */
export async function applyMigrationInfo(
  sourceHost: Host,
  info: MigrationInfo,
): Promise<Migration | null> {
  let row = await db().migration.findUnique({ where: { id: info.migrationId } });
  if (row === null) {
    row = await adoptForeign(sourceHost, info);
    if (row === null) return null;
  }
  const status = rowStatus(info.status);
  const stats = info.stats;
  row = await db().migration.update({
    where: { id: row.id },
    data: {
      // A row that ended is not reopened by a late progress event.
      status: IN_FLIGHT.includes(row.status) ? status : row.status,
      finishedAt: info.finishedAt === null ? row.finishedAt : new Date(info.finishedAt),
      totalBytes: stats?.totalBytes == null ? row.totalBytes : BigInt(stats.totalBytes),
      transferredBytes:
        stats?.transferredBytes == null ? row.transferredBytes : BigInt(stats.transferredBytes),
      downtimeMs: stats?.downtimeMs ?? row.downtimeMs,
      error: info.error ?? row.error,
    },
  });
  if (row.status === "completed") await moveVmRow(row);
  return row;
}

/** A migration started through virgad's own API between two hosts the portal knows. */
async function adoptForeign(sourceHost: Host, info: MigrationInfo): Promise<Migration | null> {
  const url = info.destination.replace(/\/+$/, "");
  const destination = (await db().host.findMany()).find(
    (host) => host.url.replace(/\/+$/, "") === url,
  );
  if (destination === undefined) return null;
  const vm = await db().vm.findUnique({
    where: { hostId_hostVmId: { hostId: sourceHost.id, hostVmId: info.vmId } },
  });
  return db().migration.create({
    data: {
      id: info.migrationId,
      vmId: vm?.id ?? null,
      sourceHostId: sourceHost.id,
      destinationHostId: destination.id,
      transport: "tcp",
      status: "active",
      startedAt: new Date(info.startedAt),
    },
  });
}

/**
 * The VM's row now belongs to the destination host. A row the destination's
 * watcher may have made for the arriving VM meanwhile is folded into it.
 */
export async function moveVmRow(migration: Migration): Promise<void> {
  if (migration.vmId === null) return;
  const vm = await db().vm.findUnique({ where: { id: migration.vmId } });
  if (vm === null || vm.hostId === migration.destinationHostId) return;
  const destination = await db().host.findUnique({ where: { id: migration.destinationHostId } });
  if (destination === null) return;
  let summary: VmSummary | null = null;
  try {
    summary = await virgad(destination).vm.get.query({ id: vm.hostVmId });
  } catch {
    summary = null; // the destination answers later; the watcher's next event fills it in
  }
  await db().$transaction(async (tx) => {
    const twin = await tx.vm.findUnique({
      where: { hostId_hostVmId: { hostId: destination.id, hostVmId: vm.hostVmId } },
    });
    // Both hosts' watchers may move the row at once: each write tolerates the other's.
    if (twin !== null && twin.id !== vm.id) {
      await tx.event.updateMany({ where: { vmId: twin.id }, data: { vmId: vm.id } });
      await tx.vm.deleteMany({ where: { id: twin.id } });
    }
    await tx.vm.updateMany({
      where: { id: vm.id },
      data: {
        hostId: destination.id,
        ...(summary === null
          ? {}
          : {
              state: summary.state,
              pid: summary.pid,
              config: JSON.stringify(summary.config),
              startedAt: summary.startedAt === null ? null : new Date(summary.startedAt),
            }),
      },
    });
  });
}

/**
 * The portal's row of a VM arriving on `host` by a migration the portal
 * knows of, if there is one: that row moves here instead of a new one being
 * made (vm-rows.ts).
 */
export async function arrivingRow(host: Host, hostVmId: string) {
  const migration = await db().migration.findFirst({
    where: {
      destinationHostId: host.id,
      status: { in: [...IN_FLIGHT, "completed"] },
      vm: { hostVmId, NOT: { hostId: host.id } },
    },
    orderBy: { startedAt: "desc" },
  });
  return migration;
}
