"use client";
// The VM definition form. Every field is checked, as you type, with the same
// zod schema virga-vmm parses its flags into (apps/host's vmConfigSchema);
// errors show next to their field, and the server checks again with the
// same schema and names the field the same way. NICs (on a tap, or on a
// bridge where virgad makes the tap) are the definition's `nics`, beside
// the config; the balloon is a device of the config.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useMemo, useState, type SyntheticEvent, type ReactNode } from "react";
import { errorDetails, useTRPC } from "@/lib/trpc";
import { RootPortEditor, rootPortDevices, type RootPortRow } from "./root-port-editor";
import {
  definitionNicsSchema,
  nicPlaces,
  nicSlotsLeft,
  type DefinitionNic,
} from "@/lib/definition-nics";
import {
  MAX_MEMORY_BYTES,
  MIB,
  MIN_MEMORY_BYTES,
  vmConfigSchema,
  type VmConfig,
} from "@/lib/vm-config";

type SerialKind = VmConfig["serial"]["kind"];

interface FormState {
  name: string;
  description: string;
  machine: string;
  kernel: string;
  initrd: string;
  append: string;
  bootEntry: string;
  cpus: string;
  maxCpus: string;
  sockets: string;
  cores: string;
  threads: string;
  memoryMiB: string;
  drives: { id: string; file: string; readOnly: boolean; direct: boolean }[];
  /** q35: each disk's bus and addr (pcie.0 or a root port). */
  devices: { id: string; drive: string; bus: string; addr: string }[];
  rootPorts: RootPortRow[];
  nics: { kind: "tap" | "bridge"; name: string; mac: string }[];
  balloon: { on: boolean; id: string; deflateOnOom: boolean; freePageReporting: boolean };
  serialKind: SerialKind;
  serialPath: string;
  startPaused: boolean;
}

function toForm(
  name: string,
  description: string,
  config: VmConfig,
  nics: DefinitionNic[],
): FormState {
  const balloon = config.devices.find((d) => d.driver === "virtio-balloon-device");
  return {
    name,
    description,
    machine: config.machine,
    kernel: config.kernel,
    initrd: config.initrd ?? "",
    append: config.append,
    bootEntry: config.bootEntry,
    cpus: String(config.smp.cpus),
    maxCpus: String(config.smp.maxCpus),
    sockets: String(config.smp.sockets),
    cores: String(config.smp.cores),
    threads: String(config.smp.threads),
    memoryMiB: String(config.memoryBytes / MIB),
    drives: config.drives.map((d) => ({ ...d })),
    devices: config.devices.flatMap((d) =>
      d.driver === "virtio-blk-device"
        ? [{ id: d.id, drive: d.drive, bus: "pcie.0", addr: "" }]
        : d.driver === "virtio-blk-pci"
          ? [{ id: d.id, drive: d.drive, bus: d.bus, addr: d.addr }]
          : [],
    ),
    rootPorts: config.devices.flatMap((d) =>
      d.driver === "pcie-root-port"
        ? [
            {
              id: d.id,
              port: String(d.port),
              addr: d.addr,
              chassis: d.chassis === undefined ? "" : String(d.chassis),
            },
          ]
        : [],
    ),
    nics: nics.map((nic) => ({
      kind: nic.bridge === undefined ? "tap" : "bridge",
      name: nic.bridge ?? nic.tap ?? "",
      mac: nic.mac ?? "",
    })),
    balloon: {
      on: balloon !== undefined,
      id: balloon?.id ?? "balloon0",
      deflateOnOom: balloon?.deflateOnOom ?? false,
      freePageReporting: balloon?.freePageReporting ?? false,
    },
    serialKind: config.serial.kind,
    serialPath: "path" in config.serial ? config.serial.path : "",
    startPaused: config.startPaused,
  };
}

function num(text: string): number {
  return text.trim() === "" ? Number.NaN : Number(text);
}

/** The form as a candidate VmConfig (not yet validated). */
function toConfig(form: FormState, base: VmConfig): Record<string, unknown> {
  const serial =
    form.serialKind === "file" || form.serialKind === "socket"
      ? { kind: form.serialKind, path: form.serialPath }
      : { kind: form.serialKind };
  const q35 = form.machine === "q35";
  const config: Record<string, unknown> = {
    ...base,
    machine: form.machine,
    kernel: form.kernel.trim(),
    append: form.append,
    bootEntry: form.bootEntry,
    smp: {
      cpus: num(form.cpus),
      maxCpus: num(form.maxCpus),
      sockets: num(form.sockets),
      cores: num(form.cores),
      threads: num(form.threads),
    },
    memoryBytes: num(form.memoryMiB) * MIB,
    drives: form.drives.map((d) => ({ ...d, id: d.id.trim(), file: d.file.trim() })),
    devices: [
      ...(q35 ? rootPortDevices(form.rootPorts) : []),
      ...form.devices.map((d) =>
        q35
          ? {
              driver: "virtio-blk-pci",
              id: d.id.trim(),
              drive: d.drive.trim(),
              bus: d.bus.trim(),
              addr: d.addr.trim(),
            }
          : { driver: "virtio-blk-device", id: d.id.trim(), drive: d.drive.trim() },
      ),
      ...(form.balloon.on && !q35
        ? [
            {
              driver: "virtio-balloon-device",
              id: form.balloon.id,
              deflateOnOom: form.balloon.deflateOnOom,
              freePageReporting: form.balloon.freePageReporting,
            },
          ]
        : []),
      // NICs and VFIO devices a config names itself (given through the API) are kept as they were.
      ...base.devices.filter(
        (d) =>
          d.driver === "virtio-net-device" ||
          d.driver === "virtio-net-pci" ||
          d.driver === "vfio-pci",
      ),
    ],
    serial,
    startPaused: form.startPaused,
  };
  if (form.initrd.trim() === "") delete config.initrd;
  else config.initrd = form.initrd.trim();
  return config;
}

/** The form's NICs as the definition stores them. */
function toNics(form: FormState): DefinitionNic[] {
  return form.nics.map((nic) => {
    const name = nic.name.trim();
    const mac = nic.mac.trim();
    return {
      ...(nic.kind === "tap" ? { tap: name } : { bridge: name }),
      ...(mac === "" ? {} : { mac }),
    };
  });
}

function Field(props: {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: string;
  children: ReactNode;
}) {
  return (
    <div className={`field${props.error ? " invalid" : ""}`}>
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.hint && !props.error && <span className="hint">{props.hint}</span>}
      {props.error && (
        <span className="field-error" role="alert" data-testid={`error-${props.id}`}>
          {props.error}
        </span>
      )}
    </div>
  );
}

export function DefinitionForm(props: {
  mode: "create" | "edit";
  id?: string;
  name: string;
  description: string;
  config: VmConfig;
  nics: DefinitionNic[];
}) {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  const [form, setForm] = useState<FormState>(() =>
    toForm(props.name, props.description, props.config, props.nics),
  );
  const [touched, setTouched] = useState(false);
  const set = <K extends keyof FormState>(key: K, value: FormState[K]) => {
    setTouched(true);
    setForm((old) => ({ ...old, [key]: value }));
  };

  const candidate = useMemo(() => toConfig(form, props.config), [form, props.config]);
  const nics = useMemo(() => toNics(form), [form]);
  const localErrors = useMemo(() => {
    const errors: Record<string, string> = {};
    const parsed = vmConfigSchema.safeParse(candidate);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const key = issue.path.join(".") || "config";
        // The schema counts bytes; the form asks for MiB.
        errors[key] ??=
          key === "memoryBytes"
            ? `must be a whole number of MiB, ${MIN_MEMORY_BYTES / MIB}..${MAX_MEMORY_BYTES / MIB}`
            : issue.message;
      }
    }
    const parsedNics = definitionNicsSchema.safeParse(nics);
    if (!parsedNics.success) {
      for (const issue of parsedNics.error.issues)
        errors[["nics", ...issue.path].join(".")] ??= issue.message;
    }
    const left = nicSlotsLeft(candidate as Pick<VmConfig, "machine" | "devices">);
    if (nics.length > left) {
      errors.nics = `at most ${left} NICs (${nicPlaces(candidate as Pick<VmConfig, "machine">)})`;
    }
    if (form.name.trim() === "") errors.name = "required";
    return errors;
  }, [candidate, nics, form.name]);

  const onSaved = {
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: trpc.definitions.pathKey() });
      router.push("/definitions");
      router.refresh();
    },
  };
  const create = useMutation(trpc.definitions.create.mutationOptions(onSaved));
  const update = useMutation(trpc.definitions.update.mutationOptions(onSaved));
  const mutation = props.mode === "create" ? create : update;
  const serverErrors = mutation.error ? errorDetails(mutation.error) : null;
  const serverFields: Record<string, string> = {};
  for (const [path, message] of Object.entries(serverErrors?.fields ?? {})) {
    serverFields[path.replace(/^config\./, "")] = message;
  }
  const [submitted, setSubmitted] = useState(false);
  const show = submitted || touched;
  const error = (key: string): string | undefined =>
    serverFields[key] ?? (show ? localErrors[key] : undefined);

  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    setSubmitted(true);
    if (Object.keys(localErrors).length > 0) return;
    const body = { name: form.name.trim(), description: form.description, config: candidate, nics };
    if (props.mode === "create") create.mutate(body);
    else update.mutate({ id: props.id ?? "", ...body });
  };

  const smpError = error("smp");
  // On q35 the config lists the root ports first, so a disk's errors come after theirs.
  const diskBase = form.machine === "q35" ? form.rootPorts.length : 0;
  const driveIds = form.drives.map((d) => d.id).filter(Boolean);

  return (
    <form className="panel" onSubmit={submit} aria-label="VM definition" noValidate>
      {serverErrors && <div className="alert error">{serverErrors.message}</div>}
      {submitted && Object.keys(localErrors).length > 0 && (
        <div className="alert error">Fix the fields marked below.</div>
      )}
      <div className="grid2">
        <Field id="name" label="Name" error={error("name")}>
          <input id="name" value={form.name} onChange={(e) => set("name", e.target.value)} />
        </Field>
        <Field id="description" label="Description">
          <input
            id="description"
            value={form.description}
            onChange={(e) => set("description", e.target.value)}
          />
        </Field>
      </div>

      <fieldset>
        <legend>Machine and boot</legend>
        <div className="grid2">
          <Field id="machine" label="Machine type" error={error("machine")}>
            <select
              id="machine"
              value={form.machine}
              onChange={(e) => set("machine", e.target.value)}
            >
              <option value="microvm">microvm</option>
              <option value="q35">q35 (PCIe: root ports, hot-plug, VFIO)</option>
            </select>
          </Field>
          <Field
            id="bootEntry"
            label="Boot entry"
            error={error("bootEntry")}
            hint="linux64: bzImage/ELF via the Linux boot protocol; pvh: ELF PVH note"
          >
            <select
              id="bootEntry"
              value={form.bootEntry}
              onChange={(e) => set("bootEntry", e.target.value)}
            >
              <option value="linux64">linux64</option>
              <option value="pvh">pvh</option>
            </select>
          </Field>
          <Field
            id="kernel"
            label="Kernel"
            error={error("kernel")}
            hint="Path on the host, inside virgad's image directories"
          >
            <input
              id="kernel"
              className="mono"
              value={form.kernel}
              onChange={(e) => set("kernel", e.target.value)}
            />
          </Field>
          <Field id="initrd" label="Initrd (optional)" error={error("initrd")}>
            <input
              id="initrd"
              className="mono"
              value={form.initrd}
              onChange={(e) => set("initrd", e.target.value)}
            />
          </Field>
        </div>
        <Field id="append" label="Kernel command line" error={error("append")}>
          <input
            id="append"
            className="mono"
            value={form.append}
            onChange={(e) => set("append", e.target.value)}
          />
        </Field>
      </fieldset>

      {form.machine === "q35" && (
        <RootPortEditor
          rows={form.rootPorts}
          onChange={(rows) => set("rootPorts", rows)}
          error={error}
          field={Field}
        />
      )}

      <fieldset>
        <legend>vCPU topology and memory</legend>
        <div className="fields">
          {(["cpus", "maxCpus", "sockets", "cores", "threads"] as const).map((key) => (
            <Field
              key={key}
              id={`smp-${key}`}
              label={key === "maxCpus" ? "max CPUs" : key}
              error={error(`smp.${key}`)}
            >
              <input
                id={`smp-${key}`}
                type="number"
                min={1}
                value={form[key]}
                onChange={(e) => set(key, e.target.value)}
              />
            </Field>
          ))}
          <Field id="memory" label="Memory (MiB)" error={error("memoryBytes")}>
            <input
              id="memory"
              type="number"
              min={16}
              value={form.memoryMiB}
              onChange={(e) => set("memoryMiB", e.target.value)}
            />
          </Field>
        </div>
        {smpError && (
          <span className="field-error" role="alert" data-testid="error-smp">
            {smpError}
          </span>
        )}
      </fieldset>

      <fieldset>
        <legend>Disks</legend>
        {form.drives.map((drive, i) => (
          <div className="row" key={i}>
            <Field id={`drive-${i}-id`} label="Drive id" error={error(`drives.${i}.id`)}>
              <input
                id={`drive-${i}-id`}
                value={drive.id}
                onChange={(e) =>
                  set(
                    "drives",
                    form.drives.map((d, j) => (j === i ? { ...d, id: e.target.value } : d)),
                  )
                }
              />
            </Field>
            <Field id={`drive-${i}-file`} label="Image file" error={error(`drives.${i}.file`)}>
              <input
                id={`drive-${i}-file`}
                className="mono"
                value={drive.file}
                onChange={(e) =>
                  set(
                    "drives",
                    form.drives.map((d, j) => (j === i ? { ...d, file: e.target.value } : d)),
                  )
                }
              />
            </Field>
            <label className="small">
              <input
                type="checkbox"
                checked={drive.readOnly}
                onChange={(e) =>
                  set(
                    "drives",
                    form.drives.map((d, j) => (j === i ? { ...d, readOnly: e.target.checked } : d)),
                  )
                }
              />{" "}
              read-only
            </label>
            <label className="small">
              <input
                type="checkbox"
                checked={drive.direct}
                onChange={(e) =>
                  set(
                    "drives",
                    form.drives.map((d, j) => (j === i ? { ...d, direct: e.target.checked } : d)),
                  )
                }
              />{" "}
              O_DIRECT
            </label>
            <button
              type="button"
              className="danger"
              onClick={() => {
                set(
                  "drives",
                  form.drives.filter((_, j) => j !== i),
                );
                set(
                  "devices",
                  form.devices.filter((d) => d.drive !== drive.id),
                );
              }}
            >
              Remove
            </button>
          </div>
        ))}
        {error("drives") && (
          <span className="field-error" role="alert">
            {error("drives")}
          </span>
        )}
        {form.devices.map((device, i) => (
          <div className="row" key={`dev-${i}`}>
            <Field
              id={`device-${i}-id`}
              label="virtio-blk device id"
              error={error(`devices.${diskBase + i}.id`)}
            >
              <input
                id={`device-${i}-id`}
                value={device.id}
                onChange={(e) =>
                  set(
                    "devices",
                    form.devices.map((d, j) => (j === i ? { ...d, id: e.target.value } : d)),
                  )
                }
              />
            </Field>
            <Field
              id={`device-${i}-drive`}
              label="Backed by drive"
              error={error(`devices.${diskBase + i}.drive`)}
            >
              <select
                id={`device-${i}-drive`}
                value={device.drive}
                onChange={(e) =>
                  set(
                    "devices",
                    form.devices.map((d, j) => (j === i ? { ...d, drive: e.target.value } : d)),
                  )
                }
              >
                <option value="">—</option>
                {driveIds.map((id) => (
                  <option key={id} value={id}>
                    {id}
                  </option>
                ))}
              </select>
            </Field>
            {form.machine === "q35" && (
              <>
                <Field
                  id={`device-${i}-bus`}
                  label="Bus"
                  error={error(`devices.${diskBase + i}.bus`)}
                >
                  <select
                    id={`device-${i}-bus`}
                    value={device.bus}
                    onChange={(e) =>
                      set(
                        "devices",
                        form.devices.map((d, j) => (j === i ? { ...d, bus: e.target.value } : d)),
                      )
                    }
                  >
                    {["pcie.0", ...form.rootPorts.map((p) => p.id)].map((bus) => (
                      <option key={bus} value={bus}>
                        {bus}
                      </option>
                    ))}
                  </select>
                </Field>
                <Field
                  id={`device-${i}-addr`}
                  label="Addr"
                  error={error(`devices.${diskBase + i}.addr`)}
                >
                  <input
                    id={`device-${i}-addr`}
                    className="mono"
                    value={device.addr}
                    onChange={(e) =>
                      set(
                        "devices",
                        form.devices.map((d, j) => (j === i ? { ...d, addr: e.target.value } : d)),
                      )
                    }
                  />
                </Field>
              </>
            )}
            <button
              type="button"
              className="danger"
              onClick={() =>
                set(
                  "devices",
                  form.devices.filter((_, j) => j !== i),
                )
              }
            >
              Remove
            </button>
          </div>
        ))}
        {error("devices") && (
          <span className="field-error" role="alert">
            {error("devices")}
          </span>
        )}
        <div className="row">
          <button
            type="button"
            onClick={() => {
              const n = form.drives.length;
              set("drives", [
                ...form.drives,
                { id: `disk${n}`, file: "", readOnly: false, direct: false },
              ]);
              set("devices", [
                ...form.devices,
                // On q35, pcie.0 from slot 0x3 on (0x0 is the host bridge's, 0x2.. the root ports' by default).
                {
                  id: `vd${String.fromCharCode(97 + n)}`,
                  drive: `disk${n}`,
                  bus: "pcie.0",
                  addr: `0x${(n + 0x10).toString(16)}.0`,
                },
              ]);
            }}
          >
            Add disk
          </button>
        </div>
      </fieldset>

      <fieldset>
        <legend>Network</legend>
        <p className="muted small">
          Each NIC is on an existing tap, or on a bridge where virgad makes a tap for the VM (named
          after the VM and slot, deleted with the NIC). Without a MAC the VM&apos;s stable one for
          the slot is used.
        </p>
        {form.nics.map((nic, i) => {
          const update = (patch: Partial<FormState["nics"][number]>) =>
            set(
              "nics",
              form.nics.map((n, j) => (j === i ? { ...n, ...patch } : n)),
            );
          return (
            <div className="row" key={`nic-${i}`} data-testid={`nic-${i}`}>
              <Field id={`nic-${i}-kind`} label="On">
                <select
                  id={`nic-${i}-kind`}
                  value={nic.kind}
                  onChange={(e) => update({ kind: e.target.value as "tap" | "bridge" })}
                >
                  <option value="bridge">a bridge (virgad makes the tap)</option>
                  <option value="tap">an existing tap</option>
                </select>
              </Field>
              <Field
                id={`nic-${i}-name`}
                label={nic.kind === "tap" ? "Tap" : "Bridge"}
                error={error(`nics.${i}.${nic.kind}`)}
              >
                <input
                  id={`nic-${i}-name`}
                  className="mono"
                  value={nic.name}
                  onChange={(e) => update({ name: e.target.value })}
                />
              </Field>
              <Field id={`nic-${i}-mac`} label="MAC (optional)" error={error(`nics.${i}.mac`)}>
                <input
                  id={`nic-${i}-mac`}
                  className="mono"
                  placeholder="52:54:00:12:34:56"
                  value={nic.mac}
                  onChange={(e) => update({ mac: e.target.value })}
                />
              </Field>
              <button
                type="button"
                className="danger"
                onClick={() =>
                  set(
                    "nics",
                    form.nics.filter((_, j) => j !== i),
                  )
                }
              >
                Remove
              </button>
            </div>
          );
        })}
        {error("nics") && (
          <span className="field-error" role="alert" data-testid="error-nics">
            {error("nics")}
          </span>
        )}
        <div className="row">
          <button
            type="button"
            disabled={form.nics.length >= nicSlotsLeft(props.config)}
            onClick={() => set("nics", [...form.nics, { kind: "bridge", name: "", mac: "" }])}
          >
            Add NIC
          </button>
        </div>
      </fieldset>

      {form.machine === "q35" ? (
        <fieldset>
          <legend>Memory balloon</legend>
          <p className="muted small">
            The form offers the balloon on the microvm only; a q35 config can have a
            virtio-balloon-pci through the API, but virgad&apos;s balloon controls are the
            microvm&apos;s so far.
          </p>
        </fieldset>
      ) : (
        <fieldset>
          <legend>Memory balloon</legend>
          <label className="small">
            <input
              id="balloon"
              type="checkbox"
              checked={form.balloon.on}
              onChange={(e) => set("balloon", { ...form.balloon, on: e.target.checked })}
            />{" "}
            Balloon device (virtio-balloon: the guest&apos;s memory can be given back to the host,
            and its memory statistics read)
          </label>
          {form.balloon.on && (
            <div className="row">
              <label className="small">
                <input
                  id="balloon-deflate-on-oom"
                  type="checkbox"
                  checked={form.balloon.deflateOnOom}
                  onChange={(e) =>
                    set("balloon", { ...form.balloon, deflateOnOom: e.target.checked })
                  }
                />{" "}
                deflate on OOM
              </label>
              <label className="small">
                <input
                  id="balloon-free-page-reporting"
                  type="checkbox"
                  checked={form.balloon.freePageReporting}
                  onChange={(e) =>
                    set("balloon", { ...form.balloon, freePageReporting: e.target.checked })
                  }
                />{" "}
                free page reporting
              </label>
            </div>
          )}
        </fieldset>
      )}

      <fieldset>
        <legend>Serial</legend>
        <div className="grid2">
          <Field
            id="serial"
            label="Serial"
            error={error("serial")}
            hint="virgad connects the serial port to the portal's console when it starts the VM"
          >
            <select
              id="serial"
              value={form.serialKind}
              onChange={(e) => set("serialKind", e.target.value as SerialKind)}
            >
              {(["stdio", "pty", "socket", "file", "none"] as const).map((kind) => (
                <option key={kind} value={kind}>
                  {kind}
                </option>
              ))}
            </select>
          </Field>
          {(form.serialKind === "file" || form.serialKind === "socket") && (
            <Field id="serial-path" label="Serial path" error={error("serial.path")}>
              <input
                id="serial-path"
                className="mono"
                value={form.serialPath}
                onChange={(e) => set("serialPath", e.target.value)}
              />
            </Field>
          )}
        </div>
        <label className="small">
          <input
            type="checkbox"
            checked={form.startPaused}
            onChange={(e) => set("startPaused", e.target.checked)}
          />{" "}
          Start with vCPUs paused (-S)
        </label>
      </fieldset>

      <div className="row">
        <button className="primary" type="submit" disabled={mutation.isPending}>
          {props.mode === "create" ? "Create definition" : "Save"}
        </button>
        <button type="button" onClick={() => router.push("/definitions")}>
          Cancel
        </button>
      </div>
    </form>
  );
}
