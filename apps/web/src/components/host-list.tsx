"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { clockTime, StateBadge } from "./state-badge";

type Host = RouterOutputs["hosts"]["list"][number];

function size(bytes: number): string {
  return bytes < 1024 ** 3
    ? `${Math.round(bytes / 1024 ** 2)} MiB`
    : `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function since(iso: string | null): string {
  if (iso === null) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return new Date(iso).toLocaleString();
}

/** Whether the host answered just now, and when any portal last reached it. */
function Reachability({ host }: { host: Host }) {
  const reachable = host.info !== null;
  return (
    <p className="small" data-testid="host-reachability">
      <span className={`state state-${reachable ? "reachable" : "unreachable"}`}>
        {reachable ? "reachable" : "unreachable"}
      </span>
      {!reachable && host.unreachableSince !== null && (
        <span suppressHydrationWarning> since {clockTime(host.unreachableSince)}</span>
      )}
      <span className="muted"> · last reached {since(host.lastSeenAt)}</span>
    </p>
  );
}

export function HostList({ initial, isAdmin }: { initial: Host[]; isAdmin: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const hosts = useQuery(
    trpc.hosts.list.queryOptions(undefined, { initialData: initial, refetchInterval: 5000 }),
  );
  const [name, setName] = useState("");
  const [url, setUrl] = useState("http://127.0.0.1:7788");
  const [token, setToken] = useState("");
  const [fingerprint, setFingerprint] = useState("");
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.hosts.list.queryKey() });
  const add = useMutation(
    trpc.hosts.add.mutationOptions({
      onSuccess: () => {
        setName("");
        setToken("");
        setFingerprint("");
        void refresh();
      },
    }),
  );
  const remove = useMutation(
    trpc.hosts.remove.mutationOptions({ onSuccess: () => void refresh() }),
  );
  const addErrors = add.error ? errorDetails(add.error) : null;
  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    add.mutate({ name, url, token, fingerprint });
  };

  return (
    <>
      {hosts.data.map((host) => (
        <section key={host.id} className="panel" data-testid={`host-${host.name}`}>
          <div className="spread">
            <div>
              <h2>
                {host.name} <span className="muted small mono">{host.url}</span>
                {host.isLocal && <span className="muted small"> (started with the portal)</span>}
              </h2>
              <div className="muted small" data-testid="host-credential">
                {host.scope === "read"
                  ? "read-only token"
                  : host.scope === "full"
                    ? "full token"
                    : ""}
                {host.fingerprint !== null && (
                  <>
                    {" · pinned certificate "}
                    <span className="mono">{host.fingerprint}</span>
                  </>
                )}
              </div>
            </div>
            {isAdmin && (
              <button
                type="button"
                className="danger"
                onClick={() => {
                  if (confirm(`Remove host '${host.name}' from the portal? Its VMs keep running.`))
                    remove.mutate({ id: host.id });
                }}
              >
                Remove
              </button>
            )}
          </div>
          <Reachability host={host} />
          {host.info === null ? (
            <div className="alert error">{host.error}</div>
          ) : (
            <>
              <table>
                <tbody>
                  <tr>
                    <th>Hostname</th>
                    <td>{host.info.hostname}</td>
                    <th>virgad</th>
                    <td>{host.info.version}</td>
                  </tr>
                  <tr>
                    <th>CPUs</th>
                    <td data-testid="host-cpus">{host.info.cpus}</td>
                    <th>Memory</th>
                    <td>{size(host.info.memoryBytes)}</td>
                  </tr>
                  <tr>
                    <th>VMs</th>
                    <td data-testid="host-vms">
                      {host.capacity.liveVms} live of {host.capacity.vms}
                    </td>
                    <th>Free memory</th>
                    <td data-testid="host-free-memory">
                      {size(host.capacity.freeBytes)}{" "}
                      <span className="muted small">
                        ({size(host.capacity.committedBytes)} held by live VMs)
                      </span>
                    </td>
                  </tr>
                  <tr>
                    <th>KVM</th>
                    <td colSpan={3} data-testid="host-kvm">
                      {host.info.kvm.present
                        ? "present"
                        : `absent: ${host.info.kvm.reason ?? "unknown"}`}
                      {host.info.kvm.present && (
                        <span className="muted small">
                          {" "}
                          (
                          {Object.entries(host.info.kvm.capabilities)
                            .filter(([, on]) => on)
                            .map(([cap]) => cap)
                            .join(", ")}
                          )
                        </span>
                      )}
                    </td>
                  </tr>
                </tbody>
              </table>
              <h2 style={{ marginTop: 12 }}>VMs ({host.info.vms.length})</h2>
              {host.info.vms.length > 0 && (
                <table>
                  <thead>
                    <tr>
                      <th>VM</th>
                      <th>State</th>
                      <th>PID</th>
                      <th>Memory used</th>
                    </tr>
                  </thead>
                  <tbody>
                    {host.info.vms.map((vm) => (
                      <tr key={vm.id}>
                        <td className="mono">{vm.id}</td>
                        <td>
                          <StateBadge state={vm.state} />
                        </td>
                        <td className="mono">{vm.pid ?? "—"}</td>
                        <td>
                          {vm.rssBytes === null
                            ? "—"
                            : `${(vm.rssBytes / 1024 ** 2).toFixed(1)} MiB`}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          )}
        </section>
      ))}
      {isAdmin && (
        <form className="panel" onSubmit={submit} aria-label="Add a host">
          <h2>Add a host</h2>
          {addErrors && <div className="alert error">{addErrors.message}</div>}
          <div className="grid2">
            <div className={`field${addErrors?.fields.name ? " invalid" : ""}`}>
              <label htmlFor="host-name">Name</label>
              <input id="host-name" value={name} onChange={(e) => setName(e.target.value)} />
              {addErrors?.fields.name && (
                <span className="field-error">{addErrors.fields.name}</span>
              )}
            </div>
            <div className={`field${addErrors?.fields.url ? " invalid" : ""}`}>
              <label htmlFor="host-url">virgad URL</label>
              <input
                id="host-url"
                className="mono"
                value={url}
                onChange={(e) => setUrl(e.target.value)}
              />
              {addErrors?.fields.url && <span className="field-error">{addErrors.fields.url}</span>}
            </div>
          </div>
          <div className={`field${addErrors?.fields.token ? " invalid" : ""}`}>
            <label htmlFor="host-token">Token</label>
            <input
              id="host-token"
              className="mono"
              type="password"
              value={token}
              onChange={(e) => setToken(e.target.value)}
            />
            <span className="hint">
              On the host: <code>node apps/host/bin/virgad.js --print-token</code> (full), or{" "}
              <code>--print-token=read</code> for a host the portal may only watch
            </span>
            {addErrors?.fields.token && (
              <span className="field-error">{addErrors.fields.token}</span>
            )}
          </div>
          <div className={`field${addErrors?.fields.fingerprint ? " invalid" : ""}`}>
            <label htmlFor="host-fingerprint">Certificate fingerprint (https only)</label>
            <input
              id="host-fingerprint"
              className="mono"
              value={fingerprint}
              onChange={(e) => setFingerprint(e.target.value)}
            />
            <span className="hint">
              On the host: <code>node apps/host/bin/virgad.js --print-fingerprint</code>; leave it
              empty to see what the host presents, then compare and confirm
            </span>
            {addErrors?.fields.fingerprint && (
              <span className="field-error">{addErrors.fields.fingerprint}</span>
            )}
          </div>
          <button className="primary" type="submit" disabled={add.isPending}>
            Add host
          </button>
        </form>
      )}
    </>
  );
}
