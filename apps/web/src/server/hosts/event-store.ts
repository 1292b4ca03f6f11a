// Storing a host's events as the watcher receives them, a batch at a time
// (one insert, one commit for however many events arrived meanwhile), and
// republishing them to this portal's hub.
//
// Several portals may store the same stream into one database: each event
// is stored once because (hostId, seq) is unique and the insert skips rows
// that exist, returning the seqs it did store. Only the portal that stored a
// VM_STATE event applies the state it carries, so a portal lagging behind
// another never sets a VM back to an older state. Batches are inserted in
// ascending seq order, so two portals inserting the same batch wait on each
// other in the same order and never deadlock.
import { Prisma, type Host, type Vm } from "@virga/prisma";
import { db } from "../db";
import { hub } from "./hub";
import type { MigrationInfo } from "@virga/host/src/daemon/router";
import { applyMigrationInfo } from "../migrations/rows";
import { virgad, type VmEvent } from "./virgad";
import { isArriving, upsertVm } from "./vm-rows";

const LIVE_STATES = new Set(["running", "paused", "prelaunch"]);

interface Item {
  vm: Vm;
  event: VmEvent;
}

function stateOf(event: VmEvent): string | null {
  if (event.event !== "VM_STATE") return null;
  const data = event.data as { state?: unknown } | null;
  return typeof data?.state === "string" ? data.state : null;
}

function isSourceProgress(data: unknown): data is MigrationInfo {
  return (
    typeof data === "object" &&
    data !== null &&
    (data as { role?: unknown }).role === "source" &&
    typeof (data as { migrationId?: unknown }).migrationId === "string"
  );
}

/**
 * The row of a VM virgad has and the portal does not yet (gone again, or
 * still arriving by migration and not this host's yet: null).
 */
async function importVm(host: Host, hostVmId: string): Promise<Vm | null> {
  try {
    const summary = await virgad(host).vm.get.query({ id: hostVmId });
    return isArriving(summary) ? null : await upsertVm(host, summary);
  } catch {
    return null;
  }
}

/** Inserts the items' events; returns the seqs this call stored. */
async function insert(hostId: string, items: readonly Item[]): Promise<Set<number>> {
  if (items.length === 0) return new Set();
  const values = items.map(
    ({ vm, event }) =>
      Prisma.sql`(${vm.id}, ${hostId}, ${event.seq}, ${event.event}, ${JSON.stringify(event.data ?? null)}, ${new Date(event.timestamp)})`,
  );
  const stored = await db().$queryRaw<{ seq: number | bigint }[]>`
    INSERT INTO "Event" ("vmId", "hostId", "seq", "event", "data", "timestamp")
    VALUES ${Prisma.join(values)}
    ON CONFLICT ("hostId", "seq") DO NOTHING
    RETURNING "seq"`;
  return new Set(stored.map((row) => Number(row.seq)));
}

/** insert(), leaving out the events of VMs another portal deleted meanwhile. */
async function insertPresent(hostId: string, items: readonly Item[]): Promise<Set<number>> {
  try {
    return await insert(hostId, items);
  } catch (error) {
    const ids = [...new Set(items.map((item) => item.vm.id))];
    const present = new Set(
      (await db().vm.findMany({ where: { id: { in: ids } }, select: { id: true } })).map(
        (row) => row.id,
      ),
    );
    if (present.size === ids.length) throw error;
    return insert(
      hostId,
      items.filter((item) => present.has(item.vm.id)),
    );
  }
}

/** Stores `events` (in seq order) of `host`, updates its VMs' rows, publishes them. */
export async function storeEvents(host: Host, events: readonly VmEvent[]): Promise<void> {
  const last = events.at(-1);
  if (last === undefined) return;
  const rows = new Map<string, Vm | null>(
    (
      await db().vm.findMany({
        where: { hostId: host.id, hostVmId: { in: [...new Set(events.map((e) => e.vmId))] } },
      })
    ).map((vm) => [vm.hostVmId, vm]),
  );
  // Before anything else: a completed migration moves its VM's row to the
  // destination host, and this host's VM_DELETED must not delete it then.
  const migrations = events.filter(
    (event) => event.event === "VM_MIGRATION" && isSourceProgress(event.data),
  );
  for (const event of migrations) await applyMigrationInfo(host, event.data as MigrationInfo);
  if (migrations.length > 0) {
    for (const [hostVmId, vm] of rows) {
      if (vm !== null) rows.set(hostVmId, await db().vm.findUnique({ where: { id: vm.id } }));
    }
  }
  const deleted = new Set(
    events
      .filter(
        (event) =>
          event.event === "VM_DELETED" && (rows.get(event.vmId)?.hostId ?? host.id) === host.id,
      )
      .map((event) => event.vmId),
  );
  const items: Item[] = [];
  for (const event of events) {
    // A VM deleted in this batch takes its events with it (cascade): skip them.
    if (deleted.has(event.vmId) || event.event === "VM_DELETED") continue;
    let vm = rows.get(event.vmId);
    if (vm === undefined) {
      vm = await importVm(host, event.vmId);
      rows.set(event.vmId, vm);
    }
    if (vm !== null) items.push({ vm, event });
  }

  const stored = await insertPresent(host.id, items);
  const newest = new Map<string, { state: string; at: string }>();
  for (const { vm, event } of items) {
    const state = stateOf(event);
    if (state !== null && stored.has(event.seq)) newest.set(vm.id, { state, at: event.timestamp });
  }
  for (const [id, { state, at }] of newest) {
    const live = LIVE_STATES.has(state);
    await db().vm.updateMany({
      where: { id, state: { not: state } },
      data: { state, ...(live ? {} : { stoppedAt: new Date(at), pid: null }) },
    });
  }
  for (const hostVmId of deleted) {
    await db().vm.deleteMany({ where: { hostId: host.id, hostVmId } });
  }
  // Only forward: another portal may be ahead of this one.
  await db().host.updateMany({
    where: { id: host.id, lastEventSeq: { lt: last.seq } },
    data: { lastEventSeq: last.seq },
  });

  const states = new Map([...rows].map(([hostVmId, vm]) => [hostVmId, vm?.state ?? null]));
  for (const event of events) {
    const state = stateOf(event);
    if (state !== null) states.set(event.vmId, state);
    hub().publish({
      vmId: rows.get(event.vmId)?.id ?? event.vmId,
      hostId: host.id,
      event: event.event,
      data: event.data,
      timestamp: event.timestamp,
      state: event.event === "VM_DELETED" ? null : (states.get(event.vmId) ?? null),
    });
  }
}
