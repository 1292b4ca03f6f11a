"use client";
// The VM page's memory panel: boot memory, the balloon's target and actual
// size, the guest's own figures (free, available) and a live chart of them,
// from virga-query-balloon polled every 2 s while the page is open; and, for
// operators, setting the balloon target.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC } from "@/lib/trpc";
import { MemoryChart, type MemorySample } from "./memory-chart";
import { formatSize } from "./device-change";

const MIB = 1024 * 1024;
const POLL_MS = 2000;
/** Ten minutes of samples at one per poll. */
const KEPT_SAMPLES = 300;

const toMiB = (bytes: number | undefined): number | null =>
  bytes === undefined ? null : Math.round((bytes / MIB) * 10) / 10;

export function MemoryPanel(props: {
  vmId: string;
  state: string;
  memoryBytes: number;
  hasBalloon: boolean;
  canAct: boolean;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const live = ["running", "paused", "prelaunch"].includes(props.state);
  const enabled = live && props.hasBalloon;
  const balloon = useQuery(
    trpc.vms.balloon.queryOptions(
      { id: props.vmId },
      { enabled, refetchInterval: enabled ? POLL_MS : false, retry: false },
    ),
  );
  const [samples, setSamples] = useState<MemorySample[]>([]);
  useEffect(() => {
    const data = balloon.data;
    if (data === undefined) return;
    const sample: MemorySample = {
      t: balloon.dataUpdatedAt / 1000,
      actualMiB: toMiB(data.actualBytes),
      availableMiB: toMiB(data.stats["stat-available-memory"]),
      freeMiB: toMiB(data.stats["stat-free-memory"]),
    };
    setSamples((old) => [...old, sample].slice(-KEPT_SAMPLES));
  }, [balloon.data, balloon.dataUpdatedAt]);

  const [targetMiB, setTargetMiB] = useState("");
  const [error, setError] = useState<string | null>(null);
  const set = useMutation(
    trpc.vms.setBalloon.mutationOptions({
      onSuccess: (result) => {
        setError(null);
        queryClient.setQueryData(trpc.vms.balloon.queryKey({ id: props.vmId }), result);
        void queryClient.invalidateQueries({
          queryKey: trpc.vms.devices.queryKey({ id: props.vmId }),
        });
      },
      onError: (e) => setError(errorDetails(e).message),
    }),
  );
  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    set.mutate({ id: props.vmId, bytes: Math.round(Number(targetMiB) * MIB) });
  };

  if (!props.hasBalloon) {
    return (
      <p className="muted" data-testid="memory-no-balloon">
        {formatSize(props.memoryBytes)} of memory. This VM has no balloon device (add one to its
        definition; the balloon cannot be hot-plugged).
      </p>
    );
  }
  if (!live) return <p className="muted">The VM is not running.</p>;
  const data = balloon.data;
  const stats = data?.stats ?? {};
  return (
    <div data-testid="memory-panel">
      {balloon.error && (
        <p className="alert info" data-testid="balloon-unavailable">
          Balloon not ready: {errorDetails(balloon.error).message}
        </p>
      )}
      <table>
        <tbody>
          <tr>
            <th>Boot memory</th>
            <td data-testid="memory-boot">{formatSize(data?.memoryBytes ?? props.memoryBytes)}</td>
            <th>Balloon target</th>
            <td data-testid="balloon-target">{data ? formatSize(data.targetBytes) : "—"}</td>
            <th>Guest has (actual)</th>
            <td data-testid="balloon-actual">{data ? formatSize(data.actualBytes) : "—"}</td>
          </tr>
          <tr>
            <th>Free</th>
            <td data-testid="memory-free">{formatSize(stats["stat-free-memory"] ?? null)}</td>
            <th>Available</th>
            <td data-testid="memory-available">
              {formatSize(stats["stat-available-memory"] ?? null)}
            </td>
            <th>Reported</th>
            <td className="small">
              {data?.statsUpdatedAt
                ? new Date(data.statsUpdatedAt).toLocaleTimeString()
                : "not yet"}
            </td>
          </tr>
        </tbody>
      </table>
      <MemoryChart samples={samples} />
      {props.canAct && (
        <form onSubmit={submit} aria-label="Balloon target" className="row">
          <div className="field">
            <label htmlFor="balloon-target-mib">Target (MiB)</label>
            <input
              id="balloon-target-mib"
              type="number"
              min={1}
              max={props.memoryBytes / MIB}
              value={targetMiB}
              onChange={(e) => setTargetMiB(e.target.value)}
            />
          </div>
          <button
            className="primary"
            type="submit"
            disabled={set.isPending || targetMiB.trim() === ""}
          >
            Set balloon
          </button>
          {error && (
            <span className="field-error" role="alert" data-testid="balloon-error">
              {error}
            </span>
          )}
        </form>
      )}
    </div>
  );
}
