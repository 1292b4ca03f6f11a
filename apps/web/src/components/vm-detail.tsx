"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { errorDetails, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { useVmWatch } from "@/lib/use-vm-watch";
import { MemoryPanel } from "./memory-panel";
import { QmpConsole } from "./qmp-console";
import { SaveTemplate } from "./save-template";
import { SerialConsole } from "./serial-console";
import { VmStateBadge } from "./state-badge";
import { VmDevices } from "./vm-devices";
import { VmMigration } from "./vm-migration";
import { ACTION_LABELS, actionsFor } from "./vm-table";

type Vm = RouterOutputs["vms"]["get"];
const LIVE = new Set(["running", "paused", "prelaunch"]);

function Topology({ vmId, state }: { vmId: string; state: string }) {
  const trpc = useTRPC();
  const cpus = useQuery(
    trpc.vms.cpus.queryOptions({ id: vmId }, { enabled: LIVE.has(state), retry: false }),
  );
  if (!LIVE.has(state)) return <p className="muted">The VM is not running.</p>;
  if (cpus.error) return <p className="alert error">{errorDetails(cpus.error).message}</p>;
  if (!cpus.data) return <p className="muted">Loading…</p>;
  const list = (cpus.data.cpus ?? []) as {
    CPU?: number;
    "cpu-index"?: number;
    "thread-id"?: number;
    thread_id?: number;
    props?: Record<string, number>;
    halted?: boolean;
    qom_path?: string;
    "qom-path"?: string;
  }[];
  const hotpluggable = (cpus.data.hotpluggable ?? []) as {
    type?: string;
    "vcpus-count"?: number;
    props?: Record<string, number>;
    "qom-path"?: string;
  }[];
  return (
    <>
      <table data-testid="cpu-table">
        <thead>
          <tr>
            <th>CPU</th>
            <th>Socket</th>
            <th>Core</th>
            <th>Thread</th>
            <th>Host thread</th>
            <th>Halted</th>
          </tr>
        </thead>
        <tbody>
          {list.map((cpu, i) => (
            <tr key={i}>
              <td>{cpu.CPU ?? cpu["cpu-index"] ?? i}</td>
              <td>{cpu.props?.["socket-id"] ?? "—"}</td>
              <td>{cpu.props?.["core-id"] ?? "—"}</td>
              <td>{cpu.props?.["thread-id"] ?? "—"}</td>
              <td className="mono">{cpu.thread_id ?? cpu["thread-id"] ?? "—"}</td>
              <td>{cpu.halted === undefined ? "—" : String(cpu.halted)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small">
        Hot-pluggable slots: {hotpluggable.length} (
        {hotpluggable.filter((h) => h["qom-path"]).length} populated)
      </p>
    </>
  );
}

function Timeline({ vmId }: { vmId: string }) {
  const trpc = useTRPC();
  const events = useQuery(trpc.vms.events.queryOptions({ id: vmId, limit: 200 }));
  return (
    <div className="timeline" data-testid="events-timeline">
      {events.data?.length === 0 && <p className="muted">No events yet.</p>}
      <ul>
        {events.data?.map((event) => (
          <li key={event.id}>
            <span className="muted small mono">
              {new Date(event.timestamp).toLocaleTimeString()}
            </span>{" "}
            <strong>{event.event}</strong>{" "}
            <span className="mono small">
              {event.data === null ? "" : JSON.stringify(event.data)}
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${bytes / 1024 ** 3} GiB` : `${bytes / 1024 ** 2} MiB`;
}

export function VmDetail({ initial, canAct }: { initial: Vm; canAct: boolean }) {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  const vm = useQuery(trpc.vms.get.queryOptions({ id: initial.id }, { initialData: initial }));
  useVmWatch((event) => {
    if (event.vmId !== initial.id) return;
    // A VM that migrated away is deleted at its source but lives on at its destination.
    const migrated = (event.data as { migratedTo?: unknown } | null)?.migratedTo !== undefined;
    if (event.event === "VM_DELETED" && !migrated) router.push("/vms");
    if (event.event === "VM_MIGRATION" || migrated) {
      void queryClient.invalidateQueries({ queryKey: trpc.vms.get.queryKey({ id: initial.id }) });
    }
    // A device change here, in another tab or through the API, a state change, an unplug.
    void queryClient.invalidateQueries({ queryKey: trpc.vms.devices.queryKey({ id: initial.id }) });
    // The summary too: a crash brings its exit (reason, last console lines), a start its PID.
    void queryClient.invalidateQueries({ queryKey: trpc.vms.get.queryKey({ id: initial.id }) });
  });
  const [error, setError] = useState<string | null>(null);
  const onDone = {
    onSuccess: (result: { state: string }) => {
      setError(null);
      if (result.state === "deleted") router.push("/vms");
      void queryClient.invalidateQueries({ queryKey: trpc.vms.get.queryKey({ id: initial.id }) });
    },
    onError: (e: unknown) => setError(errorDetails(e).message),
  };
  const mutations = {
    start: useMutation(trpc.vms.start.mutationOptions(onDone)),
    pause: useMutation(trpc.vms.pause.mutationOptions(onDone)),
    resume: useMutation(trpc.vms.resume.mutationOptions(onDone)),
    quit: useMutation(trpc.vms.quit.mutationOptions(onDone)),
    kill: useMutation(trpc.vms.kill.mutationOptions(onDone)),
    delete: useMutation(trpc.vms.delete.mutationOptions(onDone)),
  };
  const data = vm.data;
  const busy = Object.values(mutations).some((m) => m.isPending);
  const config = data.config;

  return (
    <>
      <div className="spread">
        <h1>
          {data.name} <span className="muted small mono">{data.id}</span>
        </h1>
        <Link href="/vms">All VMs</Link>
      </div>
      {error && <div className="alert error">{error}</div>}
      {data.hostError && <div className="alert error">{data.hostError}</div>}
      {data.state === "crashed" && data.exit && <CrashReport exit={data.exit} />}
      <div className="grid2">
        <section className="panel" aria-label="Status">
          <h2>Status</h2>
          <p>
            <VmStateBadge state={data.state} stale={data.hostStale} testId="vm-state" />
          </p>
          <table>
            <tbody>
              <tr>
                <th>Host</th>
                <td>{data.hostName}</td>
              </tr>
              <tr>
                <th>PID</th>
                <td className="mono">{data.pid ?? "—"}</td>
              </tr>
              <tr>
                <th>Started</th>
                <td>{data.startedAt ? new Date(data.startedAt).toLocaleString() : "—"}</td>
              </tr>
              <tr>
                <th>Kernel</th>
                <td className="mono small">{config.kernel}</td>
              </tr>
              <tr>
                <th>vCPUs</th>
                <td>
                  {config.smp.cpus} (max {config.smp.maxCpus}: {config.smp.sockets} socket ×{" "}
                  {config.smp.cores} core × {config.smp.threads} thread)
                </td>
              </tr>
              <tr>
                <th>Memory</th>
                <td>{formatBytes(config.memoryBytes)}</td>
              </tr>
              {data.clonedFrom !== null && (
                <tr>
                  <th>Cloned from</th>
                  <td className="mono">{data.clonedFrom}</td>
                </tr>
              )}
              {data.exit && (
                <tr>
                  <th>Exit</th>
                  <td>
                    code {String(data.exit.code)} {data.exit.signal ?? ""} at{" "}
                    {new Date(data.exit.at).toLocaleString()}
                  </td>
                </tr>
              )}
            </tbody>
          </table>
          {canAct && (
            <div className="row" style={{ marginTop: 12 }} aria-label="Actions">
              {actionsFor(data.state).map((action) => (
                <button
                  key={action}
                  type="button"
                  disabled={busy}
                  className={action === "kill" || action === "delete" ? "danger" : ""}
                  onClick={() => mutations[action].mutate({ id: data.id })}
                >
                  {ACTION_LABELS[action]}
                </button>
              ))}
            </div>
          )}
          {canAct && (data.state === "running" || data.state === "paused") && (
            <div style={{ marginTop: 12 }}>
              <SaveTemplate vmId={data.id} defaultName={`${data.hostVmId.slice(0, 40)}-tpl`} />
            </div>
          )}
        </section>
        <section className="panel" aria-label="vCPU topology">
          <h2>vCPU topology</h2>
          <Topology vmId={data.id} state={data.state} />
        </section>
      </div>
      <section className="panel" aria-label="Serial console">
        <h2>Serial console</h2>
        <SerialConsole vmId={data.id} canType={canAct} />
      </section>
      <section className="panel" aria-label="Devices">
        <h2>Devices</h2>
        <VmDevices vmId={data.id} hostId={data.hostId} state={data.state} canAct={canAct} />
      </section>
      <section className="panel" aria-label="Migration">
        <h2>Migration</h2>
        <VmMigration vmId={data.id} hostId={data.hostId} state={data.state} canAct={canAct} />
      </section>
      <section className="panel" aria-label="Memory">
        <h2>Memory</h2>
        <MemoryPanel
          vmId={data.id}
          state={data.state}
          memoryBytes={config.memoryBytes}
          hasBalloon={config.devices.some((d) => d.driver === "virtio-balloon-device")}
          canAct={canAct}
        />
      </section>
      <div className="grid2">
        <section className="panel" aria-label="Events">
          <h2>Events</h2>
          <Timeline vmId={data.id} />
        </section>
        <section className="panel" aria-label="QMP">
          <h2>QMP console</h2>
          <QmpConsole vmId={data.id} />
        </section>
      </div>
    </>
  );
}

/** Why a VM ended unasked: the VMM's own error line, or the signal, and what its console said last. */
function CrashReport(props: {
  exit: {
    code: number | null;
    signal: string | null;
    error: string | null;
    lastConsoleLines: string[];
  };
}) {
  const { exit } = props;
  const why =
    exit.error ??
    (exit.signal !== null
      ? `the VMM was killed by ${exit.signal}`
      : `the VMM exited with code ${String(exit.code)}`);
  return (
    <section
      className="alert error"
      role="alert"
      aria-label="Crash report"
      data-testid="crash-report"
    >
      <strong>This VM crashed:</strong> {why}
      {exit.lastConsoleLines.length > 0 && (
        <>
          <div className="small">Last console lines:</div>
          <pre className="mono small" data-testid="crash-console">
            {exit.lastConsoleLines.join("\n")}
          </pre>
        </>
      )}
    </section>
  );
}
