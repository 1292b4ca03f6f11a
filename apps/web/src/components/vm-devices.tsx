"use client";
// The VM page's disk and NIC slots: what is in each (backend file or tap,
// read-only, size, MAC, link, counters) and, for operators, attach and
// detach. A running VM is hot-plugged; a stopped one has its config edited
// (virgad does both and keeps the config in step).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode, type SyntheticEvent } from "react";
import { errorDetails, useTRPC, type RouterOutputs } from "@/lib/trpc";

type Devices = RouterOutputs["vms"]["devices"];
type NicCounters = NonNullable<Devices["nics"][number]["counters"]>;
const MIB = 1024 * 1024;

export function formatSize(bytes: number | null): string {
  if (bytes === null) return "—";
  if (bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3} GiB`;
  if (bytes >= MIB) return `${Math.round((bytes / MIB) * 10) / 10} MiB`;
  return `${bytes} B`;
}

/** Refreshes the device slots (and the VM) after a change. */
function useDeviceChange(vmId: string, setError: (message: string | null) => void) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  return {
    onSuccess: () => {
      setError(null);
      void queryClient.invalidateQueries({ queryKey: trpc.vms.devices.queryKey({ id: vmId }) });
      void queryClient.invalidateQueries({ queryKey: trpc.images.list.pathKey() });
    },
    onError: (e: unknown) => setError(errorDetails(e).message),
  };
}

/**
 * One table of slots: a row per slot, a Detach button on occupied ones for
 * operators, and the detach error above it.
 */
function SlotTable<S extends { slot: number; device: string | null }>(props: {
  kind: "disk" | "nic";
  vmId: string;
  slots: S[];
  headers: string[];
  cells: (slot: S) => ReactNode;
  canAct: boolean;
}) {
  const trpc = useTRPC();
  const [error, setError] = useState<string | null>(null);
  const done = useDeviceChange(props.vmId, setError);
  const detachDisk = useMutation(trpc.vms.detachDisk.mutationOptions(done));
  const detachNic = useMutation(trpc.vms.detachNic.mutationOptions(done));
  const detach = props.kind === "disk" ? detachDisk : detachNic;
  return (
    <>
      {error && (
        <div className="alert error" data-testid={`${props.kind}-error`}>
          {error}
        </div>
      )}
      <table data-testid={`${props.kind}-slots`}>
        <thead>
          <tr>
            {props.headers.map((header) => (
              <th key={header}>{header}</th>
            ))}
            {props.canAct && <th />}
          </tr>
        </thead>
        <tbody>
          {props.slots.map((slot) => (
            <tr
              key={slot.slot}
              data-testid={`${props.kind}-slot-${slot.slot}`}
              data-occupied={slot.device !== null}
            >
              {props.cells(slot)}
              {props.canAct && (
                <td>
                  {slot.device !== null && (
                    <button
                      type="button"
                      className="danger"
                      disabled={detach.isPending}
                      onClick={() => detach.mutate({ id: props.vmId, slot: slot.slot })}
                    >
                      Detach
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function DiskTable(props: { vmId: string; devices: Devices; canAct: boolean }) {
  return (
    <SlotTable
      kind="disk"
      vmId={props.vmId}
      slots={props.devices.disks}
      headers={["Slot", "Device", "Backend file", "Access", "Size"]}
      canAct={props.canAct}
      cells={(disk) => (
        <>
          <td className="mono">
            {disk.slot} <span className="muted">{disk.guestName}</span>
          </td>
          <td className="mono">{disk.device ?? <span className="muted">free</span>}</td>
          <td className="mono small">{disk.file ?? "—"}</td>
          <td>
            {disk.device === null ? "—" : disk.readOnly ? "read-only" : "read-write"}
            {disk.direct && <span className="muted small"> O_DIRECT</span>}
          </td>
          <td>{formatSize(disk.sizeBytes)}</td>
        </>
      )}
    />
  );
}

function AttachDisk(props: { vmId: string; hostId: string; devices: Devices }) {
  const trpc = useTRPC();
  const [error, setError] = useState<string | null>(null);
  const images = useQuery(trpc.images.list.queryOptions({ hostId: props.hostId }));
  const [choice, setChoice] = useState("");
  const [newName, setNewName] = useState("");
  const [newSizeMiB, setNewSizeMiB] = useState("64");
  const [slot, setSlot] = useState("");
  const [readOnly, setReadOnly] = useState(false);
  const [direct, setDirect] = useState(false);
  const done = useDeviceChange(props.vmId, setError);
  const create = useMutation(trpc.images.create.mutationOptions());
  const attach = useMutation(trpc.vms.attachDisk.mutationOptions(done));
  const free = props.devices.disks.filter((d) => d.device === null);
  const inUse = new Set(props.devices.disks.map((d) => d.file));
  const candidates = (images.data ?? []).filter((i) => !inUse.has(i.path));

  const submit = async (event: SyntheticEvent) => {
    event.preventDefault();
    let file = choice;
    try {
      if (choice === "new") {
        const made = await create.mutateAsync({
          hostId: props.hostId,
          name: newName.trim(),
          sizeBytes: Math.round(Number(newSizeMiB) * MIB),
        });
        file = made.path;
      }
      await attach.mutateAsync({
        id: props.vmId,
        file,
        readOnly,
        direct,
        ...(slot === "" ? {} : { slot: Number(slot) }),
      });
      setChoice("");
      setNewName("");
      setSlot("");
    } catch (e) {
      setError(errorDetails(e).message);
    }
  };

  const busy = create.isPending || attach.isPending;
  return (
    <form onSubmit={(e) => void submit(e)} aria-label="Attach a disk" className="attach">
      {error && (
        <div className="alert error" data-testid="attach-disk-error">
          {error}
        </div>
      )}
      <div className="row">
        <div className="field">
          <label htmlFor="attach-disk-image">Image</label>
          <select id="attach-disk-image" value={choice} onChange={(e) => setChoice(e.target.value)}>
            <option value="">— pick an image —</option>
            <option value="new">New blank image…</option>
            {candidates.map((image) => (
              <option key={image.path} value={image.path}>
                {image.name} ({formatSize(image.sizeBytes)}) {image.dir}
              </option>
            ))}
          </select>
        </div>
        {choice === "new" && (
          <>
            <div className="field">
              <label htmlFor="attach-disk-name">Name</label>
              <input
                id="attach-disk-name"
                className="mono"
                placeholder="data.img"
                value={newName}
                onChange={(e) => setNewName(e.target.value)}
              />
            </div>
            <div className="field">
              <label htmlFor="attach-disk-size">Size (MiB)</label>
              <input
                id="attach-disk-size"
                type="number"
                min={1}
                value={newSizeMiB}
                onChange={(e) => setNewSizeMiB(e.target.value)}
              />
            </div>
          </>
        )}
        <div className="field">
          <label htmlFor="attach-disk-slot">Slot</label>
          <select id="attach-disk-slot" value={slot} onChange={(e) => setSlot(e.target.value)}>
            <option value="">first free</option>
            {free.map((d) => (
              <option key={d.slot} value={d.slot}>
                {d.slot} ({d.guestName})
              </option>
            ))}
          </select>
        </div>
        <label className="small">
          <input
            type="checkbox"
            checked={readOnly}
            onChange={(e) => setReadOnly(e.target.checked)}
          />{" "}
          read-only
        </label>
        <label className="small">
          <input type="checkbox" checked={direct} onChange={(e) => setDirect(e.target.checked)} />{" "}
          O_DIRECT
        </label>
        <button
          className="primary"
          type="submit"
          disabled={busy || choice === "" || free.length === 0}
        >
          Attach disk
        </button>
      </div>
    </form>
  );
}

function NicTable(props: { vmId: string; devices: Devices; canAct: boolean }) {
  const counter = (counters: NicCounters | null, pick: (c: NicCounters) => string) => (
    <td className="mono small">{counters ? pick(counters) : "—"}</td>
  );
  return (
    <SlotTable
      kind="nic"
      vmId={props.vmId}
      slots={props.devices.nics}
      headers={[
        "Slot",
        "Device",
        "Tap",
        "MAC",
        "Link",
        "RX frames / bytes",
        "TX frames / bytes",
        "Dropped (rx/tx)",
      ]}
      canAct={props.canAct}
      cells={(nic) => (
        <>
          <td className="mono">
            {nic.slot} <span className="muted">{nic.guestName}</span>
          </td>
          <td className="mono">{nic.device ?? <span className="muted">free</span>}</td>
          <td className="mono small">
            {nic.ifname ?? "—"}
            {nic.bridge && <span className="muted"> on {nic.bridge}</span>}
          </td>
          <td className="mono small" data-testid={`nic-mac-${nic.slot}`}>
            {nic.mac}
            {nic.guestMac !== undefined && (
              <span
                className="muted"
                title="the MAC the guest read at boot; translated on the wire"
              >
                {" "}
                (guest: {nic.guestMac})
              </span>
            )}
          </td>
          <td>{nic.link ?? "—"}</td>
          {counter(nic.counters, (c) => `${c.rxFrames} / ${c.rxBytes}`)}
          {counter(nic.counters, (c) => `${c.txFrames} / ${c.txBytes}`)}
          {counter(nic.counters, (c) => `${c.rxDropped} / ${c.txDropped}`)}
        </>
      )}
    />
  );
}

function AttachNic(props: { vmId: string; devices: Devices }) {
  const trpc = useTRPC();
  const [error, setError] = useState<string | null>(null);
  const [kind, setKind] = useState<"bridge" | "tap">("bridge");
  const [name, setName] = useState("");
  const [mac, setMac] = useState("");
  const [slot, setSlot] = useState("");
  const changed = useDeviceChange(props.vmId, setError);
  const attach = useMutation(
    trpc.vms.attachNic.mutationOptions({
      ...changed,
      onSuccess: () => {
        changed.onSuccess();
        setName("");
        setSlot("");
      },
    }),
  );
  const free = props.devices.nics.filter((n) => n.device === null);
  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    attach.mutate({
      id: props.vmId,
      ...(kind === "bridge" ? { bridge: name.trim() } : { tap: name.trim() }),
      ...(mac.trim() === "" ? {} : { mac: mac.trim() }),
      ...(slot === "" ? {} : { slot: Number(slot) }),
    });
  };
  return (
    <form onSubmit={submit} aria-label="Attach a NIC" className="attach">
      {error && (
        <div className="alert error" data-testid="attach-nic-error">
          {error}
        </div>
      )}
      <div className="row">
        <div className="field">
          <label htmlFor="attach-nic-kind">On</label>
          <select
            id="attach-nic-kind"
            value={kind}
            onChange={(e) => setKind(e.target.value as "bridge" | "tap")}
          >
            <option value="bridge">a bridge (virgad makes the tap)</option>
            <option value="tap">an existing tap</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="attach-nic-name">{kind === "bridge" ? "Bridge" : "Tap"}</label>
          <input
            id="attach-nic-name"
            className="mono"
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="attach-nic-mac">MAC (optional)</label>
          <input
            id="attach-nic-mac"
            className="mono"
            placeholder={props.devices.live ? "the slot's" : "52:54:00:12:34:56"}
            value={mac}
            onChange={(e) => setMac(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="attach-nic-slot">Slot</label>
          <select id="attach-nic-slot" value={slot} onChange={(e) => setSlot(e.target.value)}>
            <option value="">first free</option>
            {free.map((n) => (
              <option key={n.slot} value={n.slot}>
                {n.slot} ({n.guestName}, {n.mac})
              </option>
            ))}
          </select>
        </div>
        <button
          className="primary"
          type="submit"
          disabled={attach.isPending || name.trim() === "" || free.length === 0}
        >
          Attach NIC
        </button>
      </div>
      {props.devices.live && (
        <p className="muted small">
          A NIC hot-plugged into a running VM has the slot&apos;s MAC (the guest reads it once, at
          boot); give another MAC while the VM is stopped.
        </p>
      )}
    </form>
  );
}

export function VmDevices(props: { vmId: string; hostId: string; state: string; canAct: boolean }) {
  const trpc = useTRPC();
  const live = ["running", "paused", "prelaunch"].includes(props.state);
  const devices = useQuery(
    trpc.vms.devices.queryOptions(
      { id: props.vmId },
      // NIC counters move while the VM runs.
      { refetchInterval: live ? 3000 : false, retry: false },
    ),
  );
  if (devices.error) return <p className="alert error">{errorDetails(devices.error).message}</p>;
  if (!devices.data) return <p className="muted">Loading…</p>;
  const data = devices.data;
  return (
    <div data-testid="vm-devices" data-live={data.live}>
      <p className="muted small">
        {data.live
          ? "As the running VM has them (virga-query-devices); changes are hot-plugged and kept in the VM's config."
          : "From the VM's config: changes apply at its next start."}
      </p>
      <h3>Disks</h3>
      <DiskTable vmId={props.vmId} devices={data} canAct={props.canAct} />
      {props.canAct && <AttachDisk vmId={props.vmId} hostId={props.hostId} devices={data} />}
      <h3>Network</h3>
      <NicTable vmId={props.vmId} devices={data} canAct={props.canAct} />
      {props.canAct && <AttachNic vmId={props.vmId} devices={data} />}
    </div>
  );
}
