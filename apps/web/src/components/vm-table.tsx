"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { useVmWatch } from "@/lib/use-vm-watch";
import { clockTime, VmStateBadge, type HostStale } from "./state-badge";

type Vm = RouterOutputs["vms"]["list"][number];
type Action = "start" | "pause" | "resume" | "quit" | "kill" | "delete";

const LIVE = new Set(["running", "paused", "prelaunch"]);

/** Which actions make sense in a state (the host has the last word). */
export function actionsFor(state: string): Action[] {
  if (state === "running") return ["pause", "quit", "kill"];
  if (state === "paused" || state === "prelaunch") return ["resume", "quit", "kill"];
  return ["start", "delete"];
}

export const ACTION_LABELS: Record<Action, string> = {
  start: "Start",
  pause: "Pause",
  resume: "Resume",
  quit: "Quit",
  kill: "Force stop",
  delete: "Delete",
};

/** One line per host the portal cannot reach: its VMs' states are the last ones seen. */
function StaleHosts({ vms }: { vms: Vm[] }) {
  const hosts = new Map<string, { name: string; stale: HostStale; count: number }>();
  for (const vm of vms) {
    if (vm.hostStale === null) continue;
    const seen = hosts.get(vm.hostId);
    hosts.set(vm.hostId, { name: vm.hostName, stale: vm.hostStale, count: (seen?.count ?? 0) + 1 });
  }
  return [...hosts].map(([id, { name, stale, count }]) => (
    <p key={id} className="alert error" role="status" data-testid={`host-stale-${name}`}>
      <span suppressHydrationWarning>
        Host &apos;{name}&apos; unreachable since {clockTime(stale.since)}: the states of its{" "}
        {count === 1 ? "VM" : `${count} VMs`} are the last ones seen
        {stale.lastSeenAt === null ? "" : ` (at ${clockTime(stale.lastSeenAt)})`}, not live.
      </span>
    </p>
  ));
}

/** The host choice that leaves it to placement (vms.create without hostId). */
const ANY_HOST = "*";

export function VmTable(props: {
  initialVms: Vm[];
  definitions: { id: string; name: string }[];
  hosts: { id: string; name: string; up: boolean }[];
  canAct: boolean;
}) {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  const vms = useQuery(trpc.vms.list.queryOptions(undefined, { initialData: props.initialVms }));
  const watch = useVmWatch();
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [definitionId, setDefinitionId] = useState(
    props.definitions.find((d) => d.name === "probe-guest")?.id ?? props.definitions[0]?.id ?? "",
  );
  const [hostId, setHostId] = useState(
    props.hosts.find((h) => h.up)?.id ?? props.hosts[0]?.id ?? "",
  );
  const [name, setName] = useState("");
  const [message, setMessage] = useState<string | null>(null);

  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.vms.list.queryKey() });
  const create = useMutation(
    trpc.vms.create.mutationOptions({
      onSuccess: (vm) => {
        void refresh();
        router.push(`/vms/${vm.id}`);
      },
    }),
  );
  const bulk = useMutation(
    trpc.vms.bulk.mutationOptions({
      onSuccess: (results) => {
        const failed = results.filter((r) => !r.ok);
        setMessage(
          failed.length === 0
            ? null
            : failed.map((r) => `${r.id}: ${"error" in r ? r.error : ""}`).join("\n"),
        );
        void refresh();
      },
      onError: (error) => setMessage(errorDetails(error).message),
    }),
  );

  const list = vms.data;
  const toggle = (id: string) =>
    setSelected((old) => {
      const next = new Set(old);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const run = (ids: string[], action: Action) => bulk.mutate({ ids, action });
  const startNew = (event: SyntheticEvent) => {
    event.preventDefault();
    create.mutate({
      definitionId,
      ...(hostId === ANY_HOST ? {} : { hostId }),
      ...(name.trim() ? { name: name.trim() } : {}),
    });
  };
  const createErrors = create.error ? errorDetails(create.error) : null;

  return (
    <>
      {props.canAct && (
        <form className="panel" onSubmit={startNew} aria-label="Start a VM">
          <h2>Start a VM</h2>
          {createErrors && <div className="alert error">{createErrors.message}</div>}
          <div className="row">
            <div className="field">
              <label htmlFor="start-definition">Definition</label>
              <select
                id="start-definition"
                value={definitionId}
                onChange={(e) => setDefinitionId(e.target.value)}
              >
                {props.definitions.map((d) => (
                  <option key={d.id} value={d.id}>
                    {d.name}
                  </option>
                ))}
              </select>
            </div>
            <div className="field">
              <label htmlFor="start-host">Host</label>
              <select id="start-host" value={hostId} onChange={(e) => setHostId(e.target.value)}>
                {props.hosts.length > 1 && (
                  <option value={ANY_HOST}>the one with the most free memory</option>
                )}
                {props.hosts.map((h) => (
                  <option key={h.id} value={h.id}>
                    {h.name}
                    {h.up ? "" : " (unreachable)"}
                  </option>
                ))}
              </select>
            </div>
            <div className="field">
              <label htmlFor="start-name">Name (optional)</label>
              <input
                id="start-name"
                value={name}
                onChange={(e) => setName(e.target.value)}
                placeholder="defaults to the definition's"
              />
            </div>
            <button
              className="primary"
              type="submit"
              disabled={create.isPending || !definitionId || !hostId}
            >
              {create.isPending ? "Starting…" : "Start"}
            </button>
          </div>
        </form>
      )}

      <div className="panel">
        <div className="spread" style={{ marginBottom: 8 }}>
          <span className="muted small" data-testid="live-status">
            {watch.status === "pending"
              ? "live"
              : watch.status === "connecting"
                ? "connecting…"
                : watch.status}
          </span>
          {props.canAct && (
            <div className="row" aria-label="Bulk actions">
              <span className="muted small">{selected.size} selected</span>
              {(["start", "pause", "resume", "quit", "kill", "delete"] as Action[]).map(
                (action) => (
                  <button
                    key={action}
                    type="button"
                    disabled={selected.size === 0 || bulk.isPending}
                    className={action === "kill" || action === "delete" ? "danger" : ""}
                    onClick={() => run([...selected], action)}
                  >
                    {ACTION_LABELS[action]}
                  </button>
                ),
              )}
            </div>
          )}
        </div>
        {message && <pre className="alert error">{message}</pre>}
        <StaleHosts vms={list} />
        {list.length === 0 ? (
          <p className="muted">No VMs yet. Start one from a definition above.</p>
        ) : (
          <table>
            <thead>
              <tr>
                {props.canAct && <th aria-label="Select" />}
                <th>Name</th>
                <th>State</th>
                <th>Host</th>
                <th>Definition</th>
                <th>Started</th>
                {props.canAct && <th>Actions</th>}
              </tr>
            </thead>
            <tbody>
              {list.map((vm) => (
                <tr key={vm.id} data-testid={`vm-row-${vm.id}`}>
                  {props.canAct && (
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`Select ${vm.name}`}
                        checked={selected.has(vm.id)}
                        onChange={() => toggle(vm.id)}
                      />
                    </td>
                  )}
                  <td>
                    <Link href={`/vms/${vm.id}`}>{vm.name}</Link>
                    <div className="muted small mono">{vm.id}</div>
                  </td>
                  <td>
                    <VmStateBadge state={vm.state} stale={vm.hostStale} testId={`state-${vm.id}`} />
                  </td>
                  <td>{vm.hostName}</td>
                  <td>{vm.definitionName ?? <span className="muted">—</span>}</td>
                  <td className="small">
                    {vm.startedAt && LIVE.has(vm.state)
                      ? new Date(vm.startedAt).toLocaleString()
                      : "—"}
                  </td>
                  {props.canAct && (
                    <td>
                      <div className="row">
                        {actionsFor(vm.state).map((action) => (
                          <button
                            key={action}
                            type="button"
                            className={action === "kill" || action === "delete" ? "danger" : ""}
                            disabled={bulk.isPending}
                            onClick={() => run([vm.id], action)}
                          >
                            {ACTION_LABELS[action]}
                          </button>
                        ))}
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </>
  );
}
