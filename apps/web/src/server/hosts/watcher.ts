// One watcher per registered host, running in the portal's server process:
// it follows virgad's event stream (resuming from the last seq stored on the
// Host row, so nothing is missed across portal or virgad restarts), stores
// each event, keeps the Vm rows' state current, and republishes to the hub
// for the browsers. A periodic reconcile with vm.list repairs anything a
// dropped stream or a deleted VM left behind, and records the host's health.
import type { Host } from "@virga/prisma";
import { db } from "../db";
import { hub } from "./hub";
import { forgetHost, virgad, virgadStream, type VmEvent } from "./virgad";
import { isArriving, syncHostVms, upsertVm } from "./vm-rows";
import { applyMigrationInfo } from "../migrations/rows";
import type { MigrationInfo } from "@virga/host/src/daemon/router";

const RESCAN_MS = 3000;
const RECONCILE_MS = 10_000;

interface Watch {
  key: string;
  stop: () => void;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isSourceProgress(data: unknown): data is MigrationInfo {
  return (
    typeof data === "object" &&
    data !== null &&
    (data as { role?: unknown }).role === "source" &&
    typeof (data as { migrationId?: unknown }).migrationId === "string"
  );
}

async function handleEvent(host: Host, event: VmEvent): Promise<void> {
  let vm = await db().vm.findUnique({
    where: { hostId_hostVmId: { hostId: host.id, hostVmId: event.vmId } },
  });
  if (event.event === "VM_MIGRATION" && isSourceProgress(event.data)) {
    // Before anything else: a completed migration moves the VM's row away from this host.
    await applyMigrationInfo(host, event.data);
    vm = await db().vm.findUnique({ where: { id: vm?.id ?? "" } });
  }
  if (event.event === "VM_DELETED") {
    if (vm !== null && vm.hostId === host.id) await db().vm.delete({ where: { id: vm.id } });
  } else if (vm === null) {
    try {
      const summary = await virgad(host).vm.get.query({ id: event.vmId });
      vm = isArriving(summary) ? null : await upsertVm(host, summary);
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
    await db().event.create({
      data: {
        vmId: vm.id,
        hostId: host.id,
        seq: event.seq,
        event: event.event,
        data: JSON.stringify(event.data ?? null),
        timestamp: new Date(event.timestamp),
      },
    });
    if (state !== null && state !== vm.state) {
      const live = state === "running" || state === "paused" || state === "prelaunch";
      await db().vm.update({
        where: { id: vm.id },
        data: { state, ...(live ? {} : { stoppedAt: new Date(event.timestamp), pid: null }) },
      });
    }
  }
  await db().host.update({ where: { id: host.id }, data: { lastEventSeq: event.seq } });
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
    const summaries = await virgad(host).vm.list.query();
    const before = new Map(
      (await db().vm.findMany({ where: { hostId: host.id } })).map((vm) => [vm.hostVmId, vm.state]),
    );
    const gone = await syncHostVms(host, summaries);
    await db().host.update({
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
      .host.update({ where: { id: host.id }, data: { lastError: describe(error) } })
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
      { lastEventId: lastEventSeq > 0 ? String(lastEventSeq) : undefined },
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
            .host.update({ where: { id: host.id }, data: { lastError: describe(error) } })
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
