// One watcher per registered host, running in the portal's server process:
// it follows virgad's event stream (resuming from the last seq stored on the
// Host row, so nothing is missed across portal or virgad restarts) and hands
// what arrives to the event store in batches (./event-store.ts), which keeps
// the Vm rows' state current and republishes to the hub for the browsers. A
// periodic reconcile with vm.list repairs anything a dropped stream or a
// deleted VM left behind, and records the host's health.
//
// Several portals may share one database, and each watches every host: its
// own browsers get their live events from its own hub, and when one portal
// dies the others are already following every stream (docs/scale-out.md).
import type { Host } from "@virga/prisma";
import { db } from "../db";
import { storeEvents } from "./event-store";
import { hub } from "./hub";
import { forgetHost, virgad, virgadStream, type VmEvent } from "./virgad";
import { syncHostVms } from "./vm-rows";

const RESCAN_MS = 3000;
const RECONCILE_MS = 10_000;
const RETRY_MS = 3000;
/** Events stored in one insert at most (6 parameters each). */
const BATCH_MAX = 500;

interface Watch {
  key: string;
  stop: () => void;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
  let retry: NodeJS.Timeout | null = null;
  const pending: VmEvent[] = [];
  let storing = false;

  /** Follows the stream again in a while, from the last seq any portal stored. */
  const resubscribe = (): void => {
    subscription?.unsubscribe();
    subscription = null;
    pending.length = 0;
    if (stopped || retry !== null) return;
    retry = setTimeout(() => {
      retry = null;
      void db()
        .host.findUnique({ where: { id: host.id } })
        .then((row) => {
          subscribe(row?.lastEventSeq ?? 0);
        })
        .catch(resubscribe);
    }, RETRY_MS);
  };

  // Events are stored in order, whatever arrived while the last batch was stored at once.
  const store = async (): Promise<void> => {
    if (storing) return;
    storing = true;
    try {
      while (pending.length > 0 && !stopped) {
        const batch = pending.splice(0, BATCH_MAX);
        try {
          await storeEvents(host, batch);
        } catch (error) {
          // Not stored, so the Host row's seq was not moved past it: start again from there.
          console.error(
            `[watcher ${host.name}] events ${batch[0]?.seq}-${batch.at(-1)?.seq}: ${describe(error)}`,
          );
          resubscribe();
        }
      }
    } finally {
      storing = false;
    }
  };

  const subscribe = (lastEventSeq: number): void => {
    if (stopped) return;
    subscription = virgadStream(host).vm.events.subscribe(
      // From 0 on a new host: what virgad kept from before the portal came.
      { lastEventId: String(lastEventSeq) },
      {
        onData: (envelope) => {
          pending.push(envelope.data as VmEvent);
          void store();
        },
        onError: (error) => {
          void db()
            .host.updateMany({ where: { id: host.id }, data: { lastError: describe(error) } })
            .catch(() => undefined);
          resubscribe();
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
