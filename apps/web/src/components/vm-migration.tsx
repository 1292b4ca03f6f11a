"use client";
// The VM page's migration panel: "Migrate" to another host or to a new
// process on its own (downtime limit, bandwidth) for operators, and the
// live view of a migration while it runs:
// transferred and remaining memory over time (uPlot), one line per round
// with the dirty rate and the expected downtime, and Cancel. Figures come
// from the source host's VM_MIGRATION events as they arrive (vms.watch),
// and from migrations.get polled once a second in case the stream lags.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useState, type SyntheticEvent } from "react";
import type { MigrationInfo } from "@virga/host/src/daemon/router";
import { formatBytes } from "@/lib/bytes";
import { errorDetails, useTRPC } from "@/lib/trpc";
import { useVmWatch } from "@/lib/use-vm-watch";
import { TimeChart, type ChartSample } from "./time-chart";

const MIB = 1024 * 1024;
const PAGE = 4096;
const POLL_MS = 1000;

const SERIES = [
  { label: "transferred", stroke: "#2459d6", key: "transferredMiB" },
  { label: "remaining", stroke: "#b7791f", key: "remainingMiB" },
] as const;
type Sample = ChartSample<(typeof SERIES)[number]["key"]>;

interface Round {
  round: number;
  transferredBytes: number | null;
  remainingBytes: number | null;
  dirtyMiBs: number | null;
  expectedDowntimeMs: number | null;
}

const toMiB = (bytes: number | null): number | null =>
  bytes === null ? null : Math.round((bytes / MIB) * 10) / 10;

function isMigrationInfo(data: unknown, id: string): data is MigrationInfo {
  return (
    typeof data === "object" &&
    data !== null &&
    (data as { migrationId?: unknown }).migrationId === id &&
    (data as { role?: unknown }).role === "source"
  );
}

/** A running migration's figures, chart and Cancel. */
export function MigrationProgress({
  vmId,
  migrationId,
  canAct,
}: {
  vmId: string;
  migrationId: string;
  canAct: boolean;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [samples, setSamples] = useState<Sample[]>([]);
  const [rounds, setRounds] = useState<Round[]>([]);
  const [latest, setLatest] = useState<MigrationInfo | null>(null);
  const migration = useQuery(
    trpc.migrations.get.queryOptions(
      { id: migrationId },
      {
        refetchInterval: (query) =>
          query.state.data === undefined || ["pending", "active"].includes(query.state.data.status)
            ? POLL_MS
            : false,
      },
    ),
  );
  const take = (info: MigrationInfo) => {
    setLatest(info);
    const stats = info.stats;
    if (stats === null) return;
    const t = (new Date(info.startedAt).getTime() + (stats.totalTimeMs ?? 0)) / 1000;
    setSamples((old) =>
      old.length > 0 && (old.at(-1)?.t ?? 0) >= t
        ? old
        : [
            ...old,
            {
              t,
              transferredMiB: toMiB(stats.transferredBytes),
              remainingMiB: toMiB(stats.remainingBytes),
            },
          ],
    );
    if (stats.rounds === null) return;
    const round: Round = {
      round: stats.rounds,
      transferredBytes: stats.transferredBytes,
      remainingBytes: stats.remainingBytes,
      dirtyMiBs:
        stats.dirtyPagesRate === null
          ? null
          : Math.round(((stats.dirtyPagesRate * PAGE) / MIB) * 10) / 10,
      expectedDowntimeMs: stats.expectedDowntimeMs,
    };
    setRounds((old) => [...old.filter((r) => r.round !== round.round), round]);
  };
  useVmWatch((event) => {
    if (event.event !== "VM_MIGRATION" || !isMigrationInfo(event.data, migrationId)) return;
    take(event.data);
    if (event.data.finishedAt !== null) {
      void queryClient.invalidateQueries({ queryKey: trpc.migrations.pathKey() });
      void queryClient.invalidateQueries({ queryKey: trpc.vms.get.queryKey({ id: vmId }) });
    }
  });
  const live = migration.data?.live ?? null;
  useEffect(() => {
    if (live !== null) take(live);
    // take only appends newer figures, so running it again for the same answer is harmless
  }, [live]);

  const [error, setError] = useState<string | null>(null);
  const cancel = useMutation(
    trpc.migrations.cancel.mutationOptions({
      onSuccess: () => {
        setError(null);
        void queryClient.invalidateQueries({ queryKey: trpc.migrations.pathKey() });
      },
      onError: (e) => setError(errorDetails(e).message),
    }),
  );

  const row = migration.data;
  if (row === undefined) return <p className="muted">Loading…</p>;
  const running = ["pending", "active"].includes(row.status);
  const stats = latest?.stats ?? null;
  return (
    <div data-testid="migration-progress" data-status={row.status}>
      {error && <div className="alert error">{error}</div>}
      <p>
        {row.transport === "unix" ? "To a new process on " : "To "}
        <strong>{row.destinationHostName}</strong>:{" "}
        <strong data-testid="migration-status">{row.status}</strong>
        {latest !== null && running && <span className="muted"> ({latest.status})</span>}
        {row.status === "completed" && (
          <>
            {" "}
            — downtime <span data-testid="migration-downtime">{row.downtimeMs ?? "?"}</span> ms, the
            VM runs {row.transport === "unix" ? "in a new process on" : "on"}{" "}
            {row.destinationHostName} now
          </>
        )}
        {row.error !== null && <span className="alert error"> {row.error}</span>}
      </p>
      {stats !== null && (
        <p className="small">
          transferred {formatBytes(stats.transferredBytes ?? 0)} of{" "}
          {formatBytes(stats.totalBytes ?? 0)}, remaining {formatBytes(stats.remainingBytes ?? 0)},{" "}
          {stats.mbps === null ? "" : `${Math.round(stats.mbps)} Mbit/s, `}
          expected downtime {stats.expectedDowntimeMs ?? "?"} ms
        </p>
      )}
      <TimeChart samples={samples} series={SERIES} unit="MiB" testId="migration-chart" />
      <table data-testid="migration-rounds">
        <thead>
          <tr>
            <th>Round</th>
            <th>Transferred</th>
            <th>Remaining</th>
            <th>Dirty rate</th>
            <th>Expected downtime</th>
          </tr>
        </thead>
        <tbody>
          {rounds.map((r) => (
            <tr key={r.round}>
              <td>{r.round}</td>
              <td>{r.transferredBytes === null ? "—" : formatBytes(r.transferredBytes)}</td>
              <td>{r.remainingBytes === null ? "—" : formatBytes(r.remainingBytes)}</td>
              <td>{r.dirtyMiBs === null ? "—" : `${r.dirtyMiBs} MiB/s`}</td>
              <td>{r.expectedDowntimeMs === null ? "—" : `${r.expectedDowntimeMs} ms`}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {canAct && running && (
        <button
          type="button"
          className="danger"
          disabled={cancel.isPending}
          onClick={() => cancel.mutate({ id: migrationId })}
        >
          {cancel.isPending ? "Cancelling…" : "Cancel migration"}
        </button>
      )}
    </div>
  );
}

/** The Migrate form: destination host, downtime limit, bandwidth. */
export function MigrateVm({
  vmId,
  hostId,
  onStarted,
}: {
  vmId: string;
  hostId: string;
  onStarted: (migrationId: string) => void;
}) {
  const trpc = useTRPC();
  const hosts = useQuery(trpc.hosts.list.queryOptions());
  // Other hosts first; its own host last, where it moves to a new process.
  const others = [
    ...(hosts.data ?? []).filter((h) => h.id !== hostId),
    ...(hosts.data ?? []).filter((h) => h.id === hostId),
  ];
  const [destination, setDestination] = useState("");
  const [downtime, setDowntime] = useState("300");
  const [bandwidth, setBandwidth] = useState("0");
  const [error, setError] = useState<{ message: string; fields: Record<string, string> } | null>(
    null,
  );
  const start = useMutation(
    trpc.migrations.start.mutationOptions({
      onSuccess: (row) => {
        setError(null);
        onStarted(row.id);
      },
      onError: (e) => setError(errorDetails(e)),
    }),
  );
  const chosen = destination || others[0]?.id || "";
  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    start.mutate({
      vmId,
      destinationHostId: chosen,
      downtimeLimitMs: Number(downtime),
      maxBandwidth: Math.round(Number(bandwidth) * MIB),
    });
  };
  return (
    <form onSubmit={submit} aria-label="Migrate" className="attach">
      {error && (
        <div className="alert error" data-testid="migrate-error">
          {error.message}
        </div>
      )}
      <div className="row">
        <div className={`field${error?.fields.destinationHostId ? " invalid" : ""}`}>
          <label htmlFor="migrate-destination">Destination host</label>
          <select
            id="migrate-destination"
            value={chosen}
            onChange={(e) => setDestination(e.target.value)}
          >
            {others.map((h) => (
              <option key={h.id} value={h.id}>
                {h.id === hostId ? `${h.name} (this host: a new process)` : h.name}
              </option>
            ))}
          </select>
        </div>
        <div className={`field${error?.fields.downtimeLimitMs ? " invalid" : ""}`}>
          <label htmlFor="migrate-downtime">Downtime limit (ms)</label>
          <input
            id="migrate-downtime"
            type="number"
            min={1}
            value={downtime}
            onChange={(e) => setDowntime(e.target.value)}
          />
        </div>
        <div className={`field${error?.fields.maxBandwidth ? " invalid" : ""}`}>
          <label htmlFor="migrate-bandwidth">Bandwidth (MiB/s, 0: no limit)</label>
          <input
            id="migrate-bandwidth"
            type="number"
            min={0}
            step="any"
            value={bandwidth}
            onChange={(e) => setBandwidth(e.target.value)}
          />
        </div>
        <button className="primary" type="submit" disabled={start.isPending || chosen === ""}>
          {start.isPending ? "Starting…" : "Migrate"}
        </button>
      </div>
    </form>
  );
}

/** The panel: the migration in progress (or the last one this page started), else the form. */
export function VmMigration({
  vmId,
  hostId,
  state,
  canAct,
}: {
  vmId: string;
  hostId: string;
  state: string;
  canAct: boolean;
}) {
  const trpc = useTRPC();
  const history = useQuery(trpc.migrations.list.queryOptions({ vmId }));
  const [shown, setShown] = useState<string | null>(null);
  const running = history.data?.find((m) => m.status === "pending" || m.status === "active");
  const current = running?.id ?? shown;
  const migratable = state === "running" || state === "paused";
  return (
    <>
      {current !== null && <MigrationProgress vmId={vmId} migrationId={current} canAct={canAct} />}
      {canAct && migratable && running === undefined && (
        <MigrateVm vmId={vmId} hostId={hostId} onStarted={setShown} />
      )}
      {!migratable && running === undefined && (
        <p className="muted small">Only a running or paused VM can be migrated.</p>
      )}
      <p className="small">
        <Link href="/migrations">All migrations</Link>
      </p>
    </>
  );
}
