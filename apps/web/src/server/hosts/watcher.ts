// One watcher per registered host, running in the portal's server process:
// it follows virgad's event stream (resuming from the last seq stored on the
// Host row, so nothing is missed across portal or virgad restarts) and hands
// what arrives to the event store in batches (./event-store.ts), which keeps
// the Vm rows' state current and republishes to the hub for the browsers. A
// periodic reconcile with vm.list repairs anything a dropped stream or a
// deleted VM left behind. Whether the host answers (the stream's connection,
// vm.list) goes to ./health.ts, and the pages mark its VMs stale meanwhile.
// A database that refuses a write (SQLite locked by another process) costs a
// retry, never an event: the stream is followed again from the last stored one.
//
// Several portals may share one database, and each watches every host: its
// own browsers get their live events from its own hub, and when one portal
// dies the others are already following every stream (docs/scale-out.md).
import type { Host } from "@virga/prisma";
import { db, describeDbError } from "../db";
import { storeEvents } from "./event-store";
import { hostHealth } from "./health";
import { hub } from "./hub";
import {
  forgetHost,
  hostError,
  virgad,
  virgadStream,
  type VmEvent,
  type VmSummary,
} from "./virgad";
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

/** Why the host failed, on its row for admins (best effort: the database may be what fails). */
function recordHostError(host: Host, message: string): Promise<void> {
  return db()
    .host.updateMany({ where: { id: host.id }, data: { lastError: message } })
    .then(
      () => undefined,
      (error: unknown) => {
        console.error(
          `[watcher ${host.name}] could not record '${message}': ${describeDbError(error)}`,
        );
      },
    );
}

/** What vm.list told: rows brought in line, changed states published. */
async function applyVmList(host: Host, summaries: VmSummary[], listedAt: Date): Promise<void> {
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
}

/**
 * One vm.list round: the host's health (it answered or not), then states and
 * deleted VMs. A database that fails meanwhile is logged and is not taken for
 * the host failing; the next round tries again. Never throws.
 */
export async function reconcileHost(host: Host): Promise<void> {
  const listedAt = new Date();
  let summaries: VmSummary[];
  try {
    summaries = await virgad(host).vm.list.query();
  } catch (error) {
    const message = hostError(error, host.name).message;
    hostHealth().failed(host, message);
    await recordHostError(host, message);
    return;
  }
  hostHealth().reached(host);
  try {
    await applyVmList(host, summaries, listedAt);
  } catch (error) {
    console.error(`[watcher ${host.name}] vm.list not applied: ${describeDbError(error)}`);
  }
}

function watch(host: Host): Watch {
  let stopped = false;
  let subscription: { unsubscribe: () => void } | null = null;
  let retry: NodeJS.Timeout | null = null;
  const pending: VmEvent[] = [];
  let storing = false;
  let reconciling = false;

  const reconcile = (): void => {
    if (reconciling || stopped) return;
    reconciling = true;
    void reconcileHost(host).finally(() => {
      reconciling = false;
    });
  };

  /** Follows the stream again in a while, from the last seq any portal stored. */
  const resubscribe = (): void => {
    subscription?.unsubscribe();
    subscription = null;
    pending.length = 0;
    if (stopped || retry !== null) return;
    retry = setTimeout(() => {
      retry = null;
      db()
        .host.findUnique({ where: { id: host.id } })
        .then((row) => {
          // Gone: the next scan stops this watch.
          if (row !== null) subscribe(row.lastEventSeq);
        })
        .catch((error: unknown) => {
          console.error(`[watcher ${host.name}] last stored event: ${describeDbError(error)}`);
          resubscribe();
        });
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
          // Not stored, so the Host row's seq was not moved past it: virgad sends it again from there.
          console.error(
            `[watcher ${host.name}] events ${batch[0]?.seq}-${batch.at(-1)?.seq} not stored: ${describeDbError(error)}; following the stream again from the last stored event in ${RETRY_MS / 1000} s`,
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
    let stream;
    try {
      stream = virgadStream(host);
    } catch (error) {
      // A credential that does not open stays so until the host is added again (a new row, a new watch).
      hostHealth().failed(host, hostError(error, host.name).message);
      void recordHostError(host, describe(error));
      return;
    }
    subscription = stream.vm.events.subscribe(
      // From 0 on a new host: what virgad kept from before the portal came.
      { lastEventId: String(lastEventSeq) },
      {
        // The websocket reconnects by itself (resuming after the last event
        // received); its state is the quickest news of virgad going and coming.
        onConnectionStateChange: (state) => {
          if (state.state === "pending") {
            const wasLost = hostHealth().of(host.id) !== null;
            hostHealth().reached(host);
            // States may have changed while the host was away.
            if (wasLost) reconcile();
          } else if (state.state === "connecting" && state.error !== null) {
            hostHealth().failed(
              host,
              `host '${host.name}' unreachable: its event stream ended (${state.error.message})`,
            );
            // vm.list says why (a refused connection, a timeout), for admins.
            reconcile();
          }
        },
        onData: (envelope) => {
          pending.push(envelope.data as VmEvent);
          void store();
        },
        onError: (error) => {
          void recordHostError(host, describe(error));
          resubscribe();
        },
      },
    );
  };

  void reconcileHost(host).then(() => {
    subscribe(host.lastEventSeq);
  });
  const timer = setInterval(reconcile, RECONCILE_MS);
  timer.unref();

  return {
    key: `${host.url} ${host.token}`,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      if (retry !== null) clearTimeout(retry);
      subscription?.unsubscribe();
      hostHealth().forget(host.id);
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
  const rescan = (): void => {
    scan().catch((error: unknown) => {
      console.error(`[watcher] hosts not read: ${describeDbError(error)}`);
    });
  };
  rescan();
  const timer = setInterval(rescan, RESCAN_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    for (const current of watches.values()) current.stop();
    watches.clear();
  };
}
