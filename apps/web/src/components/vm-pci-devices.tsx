"use client";
// A q35 VM's side of the VM page's device panel: its root ports (free ones
// are where hot-plug goes), its PCI functions with Detach (a running VM's
// unplug shows "detaching" until the guest lets go), and the host's PCI
// functions that can be passed through with VFIO, with Attach. The VMM's
// refusal (no /dev/vfio on this host, ...) is shown as it comes.
import { useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { errorDetails, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { formatSize, useDeviceChange } from "./device-change";

type Devices = RouterOutputs["vms"]["devices"];
type PciFunction = Devices["pci"][number];

function backendOf(fn: PciFunction): string {
  if (fn.file !== null) return `${fn.file}${fn.readOnly ? " (read-only)" : ""}`;
  if (fn.ifname !== null) return `tap ${fn.ifname}${fn.bridge === null ? "" : ` on ${fn.bridge}`}`;
  if (fn.host !== null) return `host ${fn.host}`;
  return "—";
}

export function PciTables(props: { vmId: string; devices: Devices; canAct: boolean }) {
  const trpc = useTRPC();
  const [error, setError] = useState<string | null>(null);
  const detach = useMutation(
    trpc.vms.detachPci.mutationOptions(useDeviceChange(props.vmId, setError)),
  );
  const { rootPorts, pci } = props.devices;
  return (
    <>
      <h3>Root ports</h3>
      {rootPorts.length === 0 ? (
        <p className="muted small">
          No root ports: nothing can be hot-plugged. Add root ports to the VM&apos;s definition.
        </p>
      ) : (
        <table data-testid="root-ports">
          <thead>
            <tr>
              <th>Root port</th>
              <th>Port</th>
              <th>Addr on pcie.0</th>
              <th>Chassis</th>
              <th>Holds</th>
            </tr>
          </thead>
          <tbody>
            {rootPorts.map((port) => (
              <tr
                key={port.id}
                data-testid={`root-port-${port.id}`}
                data-free={port.device === null}
              >
                <td className="mono">{port.id}</td>
                <td>{port.port}</td>
                <td className="mono">{port.addr}</td>
                <td>{port.chassis ?? "—"}</td>
                <td className="mono">{port.device ?? <span className="muted">free</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>PCI devices</h3>
      {error && (
        <div className="alert error" data-testid="pci-error">
          {error}
        </div>
      )}
      <table data-testid="pci-devices">
        <thead>
          <tr>
            <th>Device</th>
            <th>Driver</th>
            <th>Bus / addr</th>
            <th>Backend</th>
            <th>Size</th>
            <th>State</th>
            {props.canAct && <th />}
          </tr>
        </thead>
        <tbody>
          {pci.map((fn) => (
            <tr key={fn.id} data-testid={`pci-${fn.id}`} data-detaching={fn.detaching}>
              <td className="mono">{fn.id}</td>
              <td className="mono">{fn.driver}</td>
              <td className="mono">
                {fn.bus} {fn.addr}
              </td>
              <td className="mono small">{backendOf(fn)}</td>
              <td>{fn.file === null ? "—" : formatSize(fn.sizeBytes)}</td>
              <td>{fn.detaching ? "detaching (waiting for the guest)" : "attached"}</td>
              {props.canAct && (
                <td>
                  <button
                    type="button"
                    className="danger"
                    disabled={detach.isPending || fn.detaching}
                    onClick={() => detach.mutate({ id: props.vmId, device: fn.id })}
                  >
                    Detach
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function VfioDevices(props: {
  vmId: string;
  hostId: string;
  free: { value: string; label: string }[];
  canAct: boolean;
}) {
  const trpc = useTRPC();
  const [error, setError] = useState<string | null>(null);
  const [port, setPort] = useState("");
  const host = useQuery(trpc.hosts.pciDevices.queryOptions({ id: props.hostId }, { retry: false }));
  const attach = useMutation(
    trpc.vms.attachVfio.mutationOptions(useDeviceChange(props.vmId, setError)),
  );
  return (
    <section data-testid="vfio-devices">
      <h3>PCI devices (VFIO)</h3>
      <p className="muted small">
        This host&apos;s PCI functions, as virgad reads them from /sys/bus/pci. A function bound to
        vfio-pci in a viable IOMMU group can be passed through into a free root port.
        {host.data &&
          !host.data.vfio &&
          " This host has no /dev/vfio (the vfio module is not loaded)."}
      </p>
      {error && (
        <div className="alert error" data-testid="vfio-error">
          {error}
        </div>
      )}
      {host.error && <p className="alert error">{errorDetails(host.error).message}</p>}
      {props.canAct && (
        <div className="field">
          <label htmlFor="vfio-port">Into root port</label>
          <select id="vfio-port" value={port} onChange={(e) => setPort(e.target.value)}>
            <option value="">first free</option>
            {props.free.map((p) => (
              <option key={p.value} value={p.value}>
                {p.label}
              </option>
            ))}
          </select>
        </div>
      )}
      <table>
        <thead>
          <tr>
            <th>Address</th>
            <th>Vendor:device</th>
            <th>Class</th>
            <th>IOMMU group</th>
            <th>Driver</th>
            {props.canAct && <th />}
          </tr>
        </thead>
        <tbody>
          {(host.data?.devices ?? []).map((d) => (
            <tr key={d.address} data-testid={`host-pci-${d.address}`}>
              <td className="mono">{d.address}</td>
              <td className="mono">
                {d.vendor}:{d.device}
              </td>
              <td className="mono">{d.class}</td>
              <td>{d.iommuGroup ?? <span className="muted">none</span>}</td>
              <td className="mono">{d.driver ?? <span className="muted">none</span>}</td>
              {props.canAct && (
                <td>
                  <button
                    type="button"
                    disabled={attach.isPending}
                    onClick={() =>
                      attach.mutate({
                        id: props.vmId,
                        host: d.address,
                        ...(port === "" ? {} : { bus: port }),
                      })
                    }
                  >
                    Attach
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
