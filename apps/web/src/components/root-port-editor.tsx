"use client";
// The q35 definition's root ports: StratoVirt's `-device pcie-root-port`
// keys (id, port, addr on pcie.0, chassis). Each is a place a disk, NIC or
// VFIO device can be hot-plugged into later (slot 0 of the port), or put at
// boot. The form checks them with the VmConfig schema like every field.
import type { ReactNode } from "react";

export interface RootPortRow {
  id: string;
  port: string;
  addr: string;
  chassis: string;
}

/** The next root port: ids rp1.., ports and chassis 1.., slots from 0x2 on pcie.0. */
export function nextRootPort(rows: RootPortRow[]): RootPortRow {
  const n = rows.length + 1;
  return { id: `rp${n}`, port: String(n), addr: `0x${(n + 1).toString(16)}.0`, chassis: String(n) };
}

export function RootPortEditor(props: {
  rows: RootPortRow[];
  onChange: (rows: RootPortRow[]) => void;
  error: (key: string) => string | undefined;
  field: (props: {
    id: string;
    label: string;
    error?: string | undefined;
    children: ReactNode;
  }) => ReactNode;
}) {
  const { rows, onChange, error, field: Field } = props;
  const update = (i: number, patch: Partial<RootPortRow>) =>
    onChange(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const input = (i: number, key: keyof RootPortRow, label: string) => (
    <Field id={`rootport-${i}-${key}`} label={label} error={error(`devices.${i}.${key}`)}>
      <input
        id={`rootport-${i}-${key}`}
        className="mono"
        value={rows[i]?.[key] ?? ""}
        onChange={(e) => update(i, { [key]: e.target.value })}
      />
    </Field>
  );
  return (
    <fieldset data-testid="root-ports">
      <legend>Root ports (q35)</legend>
      <p className="muted small">
        PCIe root ports on pcie.0. Disks, NICs and VFIO devices are hot-plugged into a free root
        port (its slot 0); a disk can also sit in one from boot (bus = the port&apos;s id, addr
        0x0.0).
      </p>
      {rows.map((_, i) => (
        <div className="row" key={`rp-${i}`}>
          {input(i, "id", "Id (its bus name)")}
          {input(i, "port", "Port")}
          {input(i, "addr", "Addr on pcie.0")}
          {input(i, "chassis", "Chassis (optional)")}
          <button
            type="button"
            className="danger"
            onClick={() => onChange(rows.filter((__, j) => j !== i))}
          >
            Remove
          </button>
        </div>
      ))}
      <div className="row">
        <button type="button" onClick={() => onChange([...rows, nextRootPort(rows)])}>
          Add root port
        </button>
      </div>
    </fieldset>
  );
}

/** The rows as VmConfig devices (numbers where numbers are wanted; the schema names a bad one). */
export function rootPortDevices(rows: RootPortRow[]): Record<string, unknown>[] {
  const num = (text: string) => (text.trim() === "" ? Number.NaN : Number(text));
  return rows.map((r) => ({
    driver: "pcie-root-port",
    id: r.id.trim(),
    port: num(r.port),
    bus: "pcie.0",
    addr: r.addr.trim(),
    ...(r.chassis.trim() === "" ? {} : { chassis: num(r.chassis) }),
  }));
}
