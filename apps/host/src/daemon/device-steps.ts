// Steps shared by the device procedures of both boards (devices.ts for the
// microvm's slots, pci-devices.ts for q35's root ports): QMP calls whose
// errors come back as virgad's, undo on failure, fresh ids, config edits.
import { stat } from "node:fs/promises";
import type { VmConfig } from "../config/vm-config";
import type { DevicesInfo } from "../vmm/device-types";
import { DaemonError } from "./errors";
import type { QmpLink } from "./qmp-link";
import { createTap, deleteTap, interfaceExists, type OwnedTap } from "./taps";
import type { DeviceView } from "./vm";

/** A QMP error as virgad's: the VM's message (which names the field), with a 4xx code for its class. */
export function qmpFailure(error: { class: string; desc: string }): DaemonError {
  switch (error.class) {
    case "GenericError":
      return new DaemonError("BAD_REQUEST", error.desc);
    case "DeviceNotFound":
      return new DaemonError("NOT_FOUND", error.desc);
    case "DeviceNotActive":
      return new DaemonError("PRECONDITION_FAILED", error.desc);
    default:
      return new DaemonError("INTERNAL_SERVER_ERROR", `${error.class}: ${error.desc}`);
  }
}

export async function call(
  qmp: QmpLink,
  execute: string,
  args?: Record<string, unknown>,
): Promise<unknown> {
  const reply = await qmp.request(execute, args);
  if (reply.error !== undefined) throw qmpFailure(reply.error);
  return reply.return;
}

/** Undo steps: run in reverse, each failure logged and not thrown (the first error is what the caller sees). */
export class Undo {
  private readonly steps: (() => Promise<unknown>)[] = [];

  push(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    for (const step of this.steps.reverse()) await step().catch(() => undefined);
  }
}

/** Runs `body`; if it throws, undoes what it recorded and rethrows. */
export async function undoable<T>(body: (undo: Undo) => Promise<T>): Promise<T> {
  const undo = new Undo();
  try {
    return await body(undo);
  } catch (error) {
    await undo.run();
    throw error;
  }
}

/** An id no drive, netdev or device of the config (nor the running VM) uses. */
export function freshId(base: string, config: VmConfig, running: DevicesInfo | null): string {
  const used = new Set<string>([
    ...config.drives.map((d) => d.id),
    ...config.netdevs.map((n) => n.id),
    ...config.devices.map((d) => d.id),
  ]);
  if (running !== null) {
    for (const s of running.block)
      for (const id of [s.device, s["node-name"]]) if (id) used.add(id);
    for (const s of running.net) for (const id of [s.device, s.netdev]) if (id) used.add(id);
    for (const b of running.backends.block) used.add(b["node-name"]);
    for (const n of running.backends.net) used.add(n.id);
  }
  let id = base;
  for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
  return id;
}

export async function fileSize(file: string | null | undefined): Promise<number | null> {
  if (file === null || file === undefined) return null;
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}

export function bridgeOf(view: DeviceView, ifname: string | null): string | null {
  return view.taps.find((t) => t.ifname === ifname)?.bridge ?? null;
}

export function withoutDevice(config: VmConfig, deviceId: string): VmConfig {
  const device = config.devices.find((d) => d.id === deviceId);
  const devices = config.devices.filter((d) => d.id !== deviceId);
  if (device !== undefined && "drive" in device) {
    return { ...config, devices, drives: config.drives.filter((d) => d.id !== device.drive) };
  }
  if (device !== undefined && "netdev" in device) {
    return { ...config, devices, netdevs: config.netdevs.filter((n) => n.id !== device.netdev) };
  }
  return { ...config, devices };
}

/** blockdev-add of a raw file as node `id`, undone by blockdev-del. */
export async function addBlockBackend(
  qmp: QmpLink,
  undo: Undo,
  id: string,
  drive: { file: string; readOnly: boolean; direct: boolean },
): Promise<void> {
  await call(qmp, "blockdev-add", {
    "node-name": id,
    driver: "raw",
    file: { driver: "file", filename: drive.file },
    "read-only": drive.readOnly,
    cache: { direct: drive.direct },
  });
  undo.push(() => call(qmp, "blockdev-del", { "node-name": id }));
}

/**
 * Makes the tap `ifname` on `bridge` for a NIC of this VM (undone by
 * deleting it) and returns the VM's taps with it. One left by a crash
 * between making and recording it is made again; one that is not this
 * VM's is refused.
 */
export async function makeBridgeTap(
  view: DeviceView,
  undo: Undo,
  tap: OwnedTap,
): Promise<OwnedTap[]> {
  if (interfaceExists(tap.ifname)) {
    if (!view.taps.some((t) => t.ifname === tap.ifname)) {
      throw new DaemonError(
        "CONFLICT",
        `bridge: tap '${tap.ifname}' exists already and is not this VM's`,
      );
    }
    await deleteTap(tap.ifname);
  }
  await createTap(tap);
  undo.push(() => deleteTap(tap.ifname));
  return [...view.taps.filter((t) => t.ifname !== tap.ifname), tap];
}
