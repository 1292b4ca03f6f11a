"use client";
// The Migrations page's table: every migration's VM, hosts, status, timings,
// bytes, downtime and error; refreshed every 2 s while one is running.
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { formatBytes } from "@/lib/bytes";
import { useTRPC, type RouterOutputs } from "@/lib/trpc";

type Rows = RouterOutputs["migrations"]["list"];

export function MigrationsTable({ initial }: { initial: Rows }) {
  const trpc = useTRPC();
  const list = useQuery(
    trpc.migrations.list.queryOptions(undefined, {
      initialData: initial,
      refetchInterval: (query) =>
        (query.state.data ?? []).some((m) => m.status === "pending" || m.status === "active")
          ? 2000
          : false,
    }),
  );
  const rows = list.data;
  return (
    <>
      <table data-testid="migrations-table">
        <thead>
          <tr>
            <th>VM</th>
            <th>Source</th>
            <th>Destination</th>
            <th>Status</th>
            <th>Started</th>
            <th>Took</th>
            <th>Transferred</th>
            <th>Memory</th>
            <th>Downtime</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => (
            <tr key={m.id} data-testid={`migration-${m.id}`}>
              <td>
                {m.vmId === null ? (
                  <span className="muted">(deleted)</span>
                ) : (
                  <Link href={`/vms/${m.vmId}`}>{m.vmName ?? m.vmId}</Link>
                )}
              </td>
              <td>{m.sourceHostName}</td>
              <td>
                {m.destinationHostName}
                {m.transport === "unix" && <span className="muted"> (new process)</span>}
              </td>
              <td data-testid="migration-row-status">{m.status}</td>
              <td className="small">{new Date(m.startedAt).toLocaleString()}</td>
              <td>{m.durationMs === null ? "—" : `${m.durationMs} ms`}</td>
              <td>{m.transferredBytes === null ? "—" : formatBytes(m.transferredBytes)}</td>
              <td>{m.totalBytes === null ? "—" : formatBytes(m.totalBytes)}</td>
              <td data-testid="migration-row-downtime">
                {m.downtimeMs === null ? "—" : `${m.downtimeMs} ms`}
              </td>
              <td className="small">{m.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && <p className="muted">No migrations yet.</p>}
    </>
  );
}
