// One watcher per registered host, running in the portal's server process:
// it follows virgad's event stream (resuming from the last seq stored on the
// Host row, so nothing is missed across portal or virgad restarts), stores
// each event, keeps the Vm rows' state current, and republishes to the hub
// for the browsers. A periodic reconcile with vm.list repairs anything a
// dropped stream or a deleted VM left behind, and records the host's health.
//
// Several portals may share one database, and each watches every host: its
// own browsers get their live events from its own hub, and when one portal
// dies the others are already following every stream. Each event is still
// stored once: (hostId, seq) is unique and the insert does nothing when the
// row exists. Only the portal whose insert stored the event applies the
// state change it carries, so a portal that lags behind another never sets
// a VM back to an older state (docs/scale-out.md).
import type { Host } from "@virga/prisma";
import { db } from "../db";
import { hub } from "./hub";
import { forgetHost, virgad, virgadStream, type VmEvent } from "./virgad";
import { syncHostVms, upsertVm } from "./vm-rows";

const RESCAN_MS = 3000;
const RECONCILE_MS = 10_000;

interface Watch {
  key: string;
  stop: () => void;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Stores one event unless a portal stored it already; true when this call did.
 * A VM deleted meanwhile (its row gone, so the foreign key refuses) counts as
 * not stored.
 */
async function storeEvent(vmId: string, hostId: string, event: VmEvent): Promise<boolean> {
  const data = JSON.stringify(event.data ?? null);
  const timestamp = new Date(event.timestamp);
  try {
    const inserted = await db().$executeRaw`
      INSERT INTO "Event" ("vmId", "hostId", "seq", "event", "data", "timestamp")
      VALUES (${vmId}, ${hostId}, ${event.seq}, ${event.event}, ${data}, ${timestamp})
      ON CONFLICT ("hostId", "seq") DO NOTHING`;
    return inserted > 0;
  } catch (error) {
    if ((await db().vm.count({ where: { id: vmId } })) === 0) return false;
    throw error;
  }
}

async function handleEvent(host: Host, event: VmEvent): Promise<void> {
  let vm = await db().vm.findUnique({
    where: { hostId_hostVmId: { hostId: host.id, hostVmId: event.vmId } },
  });
  if (event.event === "VM_DELETED") {
    if (vm !== null) await db().vm.deleteMany({ where: { id: vm.id } });
  } else if (vm === null) {
    try {
      vm = await upsertVm(host, await virgad(host).vm.get.query({ id: event.vmId }));
    } catch {
      vm = null; // gone again before we looked
    }
  }
  let state: string | null = null;
  if (event.event === "VM_STATE") {
    const data = event.data as { state?: unknown } | null;
    if (typeof data?.state === "string") state = data.state;
  }
  if (vm !== null && event.event !== "VM_DELETED") {
    const stored = await storeEvent(vm.id, host.id, event);
    if (stored && state !== null && state !== vm.state) {
      const live = state === "running" || state === "paused" || state === "prelaunch";
      await db().vm.updateMany({
        where: { id: vm.id },
        data: { state, ...(live ? {} : { stoppedAt: new Date(event.timestamp), pid: null }) },
      });
    }
  }
  // Only forward: another portal may be ahead of this one.
  await db().host.updateMany({
    where: { id: host.id, lastEventSeq: { lt: event.seq } },
    data: { lastEventSeq: event.seq },
  });
  hub().publish({
    vmId: vm?.id ?? event.vmId,
    hostId: host.id,
    event: event.event,
    data: event.data,
    timestamp: event.timestamp,
    state: state ?? vm?.state ?? null,
  });
}

/** One vm.list round: states, deleted VMs, host health. */
export async function reconcileHost(host: Host): Promise<void> {
  try {
    const listedAt = new Date();
    const summaries = await virgad(host).vm.list.query();
    const before = new Map(
      (await db().vm.findMany({ where: { hostId: host.id } })).map((vm) => [vm.hostVmId, vm.state]),
    );
    const gone = await syncHostVms(host, summaries, listedAt);
    await db().host.updateMany({
      where: { id: host.id },
      data: { lastSeenAt: new Date(), lastError: null },
    });
    const now = new Date().toISOString();
    for (const summary of summaries) {
      if (before.get(summary.id) === summary.state) continue;
      const row = await db().vm.findUnique({
        where: { hostId_hostVmId: { hostId: host.id, hostVmId: summary.id } },
      });
      if (row === null) continue;
      hub().publish({
        vmId: row.id,
        hostId: host.id,
        event: "PORTAL_SYNC",
        data: { state: summary.state },
        timestamp: now,
        state: summary.state,
      });
    }
    for (const row of gone) {
      hub().publish({
        vmId: row.id,
        hostId: host.id,
        event: "VM_DELETED",
        data: null,
        timestamp: now,
        state: null,
      });
    }
  } catch (error) {
    await db()
      .host.updateMany({ where: { id: host.id }, data: { lastError: describe(error) } })
      .catch(() => undefined);
  }
}

function watch(host: Host): Watch {
  let stopped = false;
  let subscription: { unsubscribe: () => void } | null = null;
  let queue: Promise<void> = Promise.resolve();
  let retry: NodeJS.Timeout | null = null;

  const subscribe = (lastEventSeq: number): void => {
    if (stopped) return;
    subscription = virgadStream(host).vm.events.subscribe(
      // From 0 on a new host: what virgad kept from before the portal came.
      { lastEventId: String(lastEventSeq) },
      {
        onData: (envelope) => {
          // Events are handled one at a time, in order.
          queue = queue.then(() =>
            handleEvent(host, envelope.data as VmEvent).catch((error: unknown) => {
              console.error(`[watcher ${host.name}] event ${envelope.id}: ${describe(error)}`);
            }),
          );
        },
        onError: (error) => {
          subscription = null;
          void db()
            .host.updateMany({ where: { id: host.id }, data: { lastError: describe(error) } })
            .catch(() => undefined);
          if (!stopped) {
            retry = setTimeout(() => {
              void db()
                .host.findUnique({ where: { id: host.id } })
                .then((row) => {
                  subscribe(row?.lastEventSeq ?? 0);
                });
            }, 3000);
          }
        },
      },
    );
  };

  void reconcileHost(host).then(() => {
    subscribe(host.lastEventSeq);
  });
  const timer = setInterval(() => {
    void db()
      .host.findUnique({ where: { id: host.id } })
      .then((row) => (row === null ? undefined : reconcileHost(row)));
  }, RECONCILE_MS);
  timer.unref();

  return {
    key: `${host.url} ${host.token}`,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      if (retry !== null) clearTimeout(retry);
      subscription?.unsubscribe();
    },
  };
}

/** Starts watching every registered host, and hosts added or removed later. */
export function startHostWatchers(): () => void {
  const watches = new Map<string, Watch>();
  const scan = async (): Promise<void> => {
    const hosts = await db().host.findMany();
    const seen = new Set<string>();
    for (const host of hosts) {
      seen.add(host.id);
      const current = watches.get(host.id);
      if (current?.key === `${host.url} ${host.token}`) continue;
      current?.stop();
      watches.set(host.id, watch(host));
    }
    for (const [id, current] of watches) {
      if (seen.has(id)) continue;
      current.stop();
      watches.delete(id);
      forgetHost(id);
    }
  };
  void scan();
  const timer = setInterval(() => {
    void scan().catch((error: unknown) => {
      console.error(`[watcher] ${describe(error)}`);
    });
  }, RESCAN_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    for (const current of watches.values()) current.stop();
    watches.clear();
  };
}
