// Disks, NICs and the balloon of one VM (docs/devices.md), as typed
// procedures over the VM's QMP link rather than raw QMP. A running VM is
// changed through hot-plug and its config.json updated to match, so a
// restart brings the device back in the same slot (hot-plugged devices
// become boot-time devices with their `slot`); a stopped VM's config is
// edited. Every step that succeeded is undone when a later one fails
// (blockdev-add then a refused device_add → blockdev-del), and the VM's own
// error comes back as a 4xx with its message, which names the field.
import { stat } from "node:fs/promises";
import {
  BLOCK_SLOTS,
  NET_SLOTS,
  type BlockDevice,
  type Device,
  type Drive,
  type NetDevice,
  type Netdev,
  type VmConfig,
} from "../config/vm-config";
import type { BalloonInfo, DevicesInfo } from "../vmm/device-types";
import type { ImageDirs } from "./confine";
import { DaemonError, badRequest, wrongState } from "./errors";
import type { QmpLink } from "./qmp-link";
import { createTap, deleteTap, interfaceExists, tapName, type OwnedTap } from "./taps";
import { LIVE_STATES, type DeviceView, type ManagedVm } from "./vm";

export interface DiskSlot {
  slot: number;
  /** vda..vdf. */
  guestName: string;
  device: string | null;
  file: string | null;
  readOnly: boolean;
  direct: boolean;
  /** The backend's size; null when the slot is empty or the file cannot be read. */
  sizeBytes: number | null;
}

export interface NicCounters {
  rxFrames: number;
  txFrames: number;
  rxBytes: number;
  txBytes: number;
  rxDropped: number;
  txDropped: number;
}

export interface NicSlot {
  slot: number;
  /** eth0, eth1. */
  guestName: string;
  device: string | null;
  /** The tap behind the NIC. */
  ifname: string | null;
  /** The bridge, when virgad created the tap on one. */
  bridge: string | null;
  /** The slot's MAC on the network (fixed when the guest probes it at boot). */
  mac: string;
  /**
   * Running VMs only, when it differs from `mac`: the MAC the guest read
   * at boot (a clone restored with its own MAC; virga-vmm translates).
   */
  guestMac?: string;
  /** Running VMs only: link state, driver and counters. */
  link: "up" | "down" | null;
  driverReady: boolean | null;
  counters: NicCounters | null;
}

export interface BalloonSlot {
  device: string;
  deflateOnOom: boolean;
  freePageReporting: boolean;
  /** Running VMs only: whether the guest's driver took the device. */
  driverReady: boolean | null;
}

export interface VmDevices {
  /** From the running VM (virga-query-devices), else from its config. */
  live: boolean;
  disks: DiskSlot[];
  nics: NicSlot[];
  balloon: BalloonSlot | null;
  /** The balloon target last set through virgad (applied again after a start). */
  balloonTargetBytes: number | null;
}

export interface Balloon {
  actualBytes: number;
  targetBytes: number;
  memoryBytes: number;
  /** The guest's statistics as QEMU names them (stat-free-memory, stat-available-memory, ...), in bytes or counts. */
  stats: Record<string, number>;
  /** When the guest last reported them; null before the first report. */
  statsUpdatedAt: string | null;
}

export interface AttachDiskInput {
  file: string;
  readOnly?: boolean | undefined;
  direct?: boolean | undefined;
  slot?: number | undefined;
}

export interface AttachNicInput {
  /** An existing tap, by name... */
  tap?: string | undefined;
  /** ...or a bridge virgad puts a tap of its own on. */
  bridge?: string | undefined;
  mac?: string | undefined;
  slot?: number | undefined;
}

const guestDisk = (slot: number): string => `vd${String.fromCharCode(97 + slot)}`;
const guestNic = (slot: number): string => `eth${slot}`;
const hex = (slot: number): string => `0x${slot.toString(16)}`;

// ---- QMP ----------------------------------------------------------------------

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

async function call(
  qmp: QmpLink,
  execute: string,
  args?: Record<string, unknown>,
): Promise<unknown> {
  const reply = await qmp.request(execute, args);
  if (reply.error !== undefined) throw qmpFailure(reply.error);
  return reply.return;
}

/** Undo steps: run in reverse, each failure logged and not thrown (the first error is what the caller sees). */
class Undo {
  private readonly steps: (() => Promise<unknown>)[] = [];

  push(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    for (const step of this.steps.reverse()) await step().catch(() => undefined);
  }
}

/** Runs `body`; if it throws, undoes what it recorded and rethrows. */
async function undoable<T>(body: (undo: Undo) => Promise<T>): Promise<T> {
  const undo = new Undo();
  try {
    return await body(undo);
  } catch (error) {
    await undo.run();
    throw error;
  }
}

// ---- slots from a config ------------------------------------------------------

interface ConfigSlots {
  disks: Map<number, { device: BlockDevice; drive: Drive | undefined }>;
  nics: Map<number, { device: NetDevice; netdev: Netdev | undefined }>;
}

/** The slots a config fills at boot: pinned devices first, then the rest in order (as virga-vmm does). */
export function configSlots(config: VmConfig): ConfigSlots {
  const result: ConfigSlots = { disks: new Map(), nics: new Map() };
  const takenDisk = new Set<number>();
  const takenNic = new Set<number>();
  for (const d of config.devices) {
    if (d.driver === "virtio-blk-device" && d.slot !== undefined) takenDisk.add(d.slot);
    if (d.driver === "virtio-net-device" && d.slot !== undefined) takenNic.add(d.slot);
  }
  const next = (taken: Set<number>): number => {
    let slot = 0;
    while (taken.has(slot)) slot++;
    taken.add(slot);
    return slot;
  };
  for (const d of config.devices) {
    if (d.driver === "virtio-blk-device") {
      const slot = d.slot ?? next(takenDisk);
      result.disks.set(slot, { device: d, drive: config.drives.find((x) => x.id === d.drive) });
    } else if (d.driver === "virtio-net-device") {
      const slot = d.slot ?? next(takenNic);
      result.nics.set(slot, { device: d, netdev: config.netdevs.find((x) => x.id === d.netdev) });
    }
  }
  return result;
}

/**
 * A config's NICs wired for a VM of their own (a clone, a migration's
 * destination): each on a tap named for `vmDir`, made on the bridge `pick`
 * gives for its slot (none: no tap is made), with the MAC it gives.
 */
export function wireNics(
  config: VmConfig,
  vmDir: string,
  pick: (slot: number) => { bridge: string | undefined; mac: string },
): { netdevs: Netdev[]; devices: Device[]; taps: OwnedTap[] } {
  const taps: OwnedTap[] = [];
  const netdevs: Netdev[] = [];
  const macs = new Map<string, string>();
  for (const [slot, used] of configSlots(config).nics) {
    const { bridge, mac } = pick(slot);
    const ifname = tapName(vmDir, slot);
    if (bridge !== undefined) taps.push({ ifname, bridge });
    netdevs.push({ id: used.device.netdev, ifname });
    macs.set(used.device.id, mac);
  }
  const devices = config.devices.map((device) => {
    const mac = macs.get(device.id);
    return mac === undefined || device.driver !== "virtio-net-device"
      ? device
      : ({ ...device, mac } satisfies NetDevice);
  });
  return { netdevs, devices, taps };
}

/** The MAC virga-vmm gives a NIC slot without mac= (docs/devices.md: FNV-1a of the VM's identity). */
export function derivedMac(identity: string, slot: number): string {
  let hash = 2166136261;
  for (const byte of Buffer.from(identity, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  const bytes = [0x52, 0x56, (hash >>> 16) & 0xff, (hash >>> 8) & 0xff, hash & 0xff, slot];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

function identityOf(config: VmConfig): string {
  if (config.name !== undefined) return config.name;
  if (config.qmp === undefined) return "";
  return config.qmp.kind === "unix" ? config.qmp.path : `${config.qmp.host}:${config.qmp.port}`;
}

/** An id no drive, netdev or device of the config (nor the running VM) uses. */
function freshId(base: string, config: VmConfig, running: DevicesInfo | null): string {
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

async function fileSize(file: string | null | undefined): Promise<number | null> {
  if (file === null || file === undefined) return null;
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}

// ---- reading -----------------------------------------------------------------

async function queryDevices(qmp: QmpLink): Promise<DevicesInfo> {
  return (await call(qmp, "virga-query-devices")) as DevicesInfo;
}

function balloonSlot(config: VmConfig, driverReady: boolean | null): BalloonSlot | null {
  const device = config.devices.find((d) => d.driver === "virtio-balloon-device");
  if (device === undefined) return null;
  return {
    device: device.id,
    deflateOnOom: device.deflateOnOom,
    freePageReporting: device.freePageReporting,
    driverReady,
  };
}

function bridgeOf(view: DeviceView, ifname: string | null): string | null {
  return view.taps.find((t) => t.ifname === ifname)?.bridge ?? null;
}

function liveDevices(view: DeviceView, info: DevicesInfo): VmDevices {
  return {
    live: true,
    disks: info.block.map((s) => ({
      slot: s.slot,
      guestName: s["guest-name"],
      device: s.device,
      file: s.file,
      readOnly: s["read-only"],
      direct: s.direct,
      sizeBytes: s.device === null ? null : s.size,
    })),
    nics: info.net.map((s) => ({
      slot: s.slot,
      guestName: s["guest-name"],
      device: s.device,
      ifname: s.ifname,
      bridge: bridgeOf(view, s.ifname),
      mac: s.mac,
      ...(s["guest-mac"] === undefined ? {} : { guestMac: s["guest-mac"] }),
      link: s.link,
      driverReady: s["driver-ready"],
      counters: {
        rxFrames: s["rx-frames"],
        txFrames: s["tx-frames"],
        rxBytes: s["rx-bytes"],
        txBytes: s["tx-bytes"],
        rxDropped: s["rx-dropped"],
        txDropped: s["tx-dropped"],
      },
    })),
    balloon: info.balloon === null ? null : balloonSlot(view.config, info.balloon["driver-ready"]),
    balloonTargetBytes: view.balloonTargetBytes,
  };
}

async function configDevices(view: DeviceView): Promise<VmDevices> {
  const { config } = view;
  const slots = configSlots(config);
  const disks: DiskSlot[] = [];
  for (let slot = 0; slot < BLOCK_SLOTS; slot++) {
    const used = slots.disks.get(slot);
    disks.push({
      slot,
      guestName: guestDisk(slot),
      device: used?.device.id ?? null,
      file: used?.drive?.file ?? null,
      readOnly: used?.drive?.readOnly ?? false,
      direct: used?.drive?.direct ?? false,
      sizeBytes: await fileSize(used?.drive?.file),
    });
  }
  const nics: NicSlot[] = [];
  for (let slot = 0; slot < NET_SLOTS; slot++) {
    const used = slots.nics.get(slot);
    const ifname =
      used?.netdev !== undefined && "ifname" in used.netdev ? used.netdev.ifname : null;
    nics.push({
      slot,
      guestName: guestNic(slot),
      device: used?.device.id ?? null,
      ifname,
      bridge: bridgeOf(view, ifname),
      mac: used?.device.mac ?? derivedMac(identityOf(config), slot),
      link: null,
      driverReady: null,
      counters: null,
    });
  }
  return {
    live: false,
    disks,
    nics,
    balloon: balloonSlot(config, null),
    balloonTargetBytes: view.balloonTargetBytes,
  };
}

async function devicesOf(view: DeviceView): Promise<VmDevices> {
  return view.qmp === null ? configDevices(view) : liveDevices(view, await queryDevices(view.qmp));
}

/** The VM's disk and NIC slots and its balloon. */
export function listDevices(vm: ManagedVm): Promise<VmDevices> {
  return devicesOf(vm.deviceView());
}

// ---- disks -------------------------------------------------------------------

function withoutDevice(config: VmConfig, deviceId: string): VmConfig {
  const device = config.devices.find((d) => d.id === deviceId);
  const devices = config.devices.filter((d) => d.id !== deviceId);
  if (device?.driver === "virtio-blk-device") {
    return { ...config, devices, drives: config.drives.filter((d) => d.id !== device.drive) };
  }
  if (device?.driver === "virtio-net-device") {
    return { ...config, devices, netdevs: config.netdevs.filter((n) => n.id !== device.netdev) };
  }
  return { ...config, devices };
}

function occupied(kind: "disk" | "NIC", slot: number, by: string): DaemonError {
  const name = kind === "disk" ? guestDisk(slot) : guestNic(slot);
  return badRequest(`slot: ${kind} slot ${slot} (${name}) is occupied by '${by}'`);
}

function firstFree(kind: "disk" | "NIC", taken: (slot: number) => boolean): number {
  const count = kind === "disk" ? BLOCK_SLOTS : NET_SLOTS;
  for (let slot = 0; slot < count; slot++) if (!taken(slot)) return slot;
  throw badRequest(`slot: every ${kind} slot is occupied (${count} on the microvm)`);
}

/** One slot as it is after a change (a fresh view: the change replaced the config). */
async function slotResult<T extends { slot: number }>(
  vm: ManagedVm,
  pick: (devices: VmDevices) => T[],
  slot: number,
): Promise<T> {
  const found = pick(await devicesOf(vm.deviceView())).find((s) => s.slot === slot);
  if (found === undefined) throw new DaemonError("INTERNAL_SERVER_ERROR", `slot ${slot} vanished`);
  return found;
}

/**
 * Attaches a disk: hot-plugged into a running VM (blockdev-add, then
 * device_add at the slot), or added to a stopped VM's config. Either way the
 * config gets the drive and the device pinned to its slot.
 */
export function attachDisk(
  vm: ManagedVm,
  images: ImageDirs,
  input: AttachDiskInput,
): Promise<DiskSlot> {
  return vm.editDevices(async (view) => {
    const file = await images.check("file", input.file, "disk");
    const readOnly = input.readOnly ?? false;
    const direct = input.direct ?? false;
    const { config, qmp } = view;
    let slot: number;
    let id: string;
    if (qmp === null) {
      const used = configSlots(config).disks;
      slot = input.slot ?? firstFree("disk", (s) => used.has(s));
      const by = used.get(slot);
      if (by !== undefined) throw occupied("disk", slot, by.device.id);
      id = freshId(`disk${slot}`, config, null);
    } else {
      const running = await queryDevices(qmp);
      // An occupied slot given by the caller is left to the VM to refuse (its message names addr).
      slot = input.slot ?? firstFree("disk", (s) => running.block[s]?.device != null);
      id = freshId(`disk${slot}`, config, running);
    }
    const next: VmConfig = {
      ...config,
      drives: [...config.drives, { id, file, readOnly, direct }],
      devices: [...config.devices, { driver: "virtio-blk-device", id, drive: id, slot }],
    };
    await undoable(async (undo) => {
      if (qmp !== null) {
        await call(qmp, "blockdev-add", {
          "node-name": id,
          driver: "raw",
          file: { driver: "file", filename: file },
          "read-only": readOnly,
          cache: { direct },
        });
        undo.push(() => call(qmp, "blockdev-del", { "node-name": id }));
        await call(qmp, "device_add", { id, driver: "virtio-blk-mmio", addr: hex(slot) });
        // device_del closes the backend too.
        undo.push(() => call(qmp, "device_del", { id }));
      }
      await view.saveConfig(next);
    });
    return slotResult(vm, (d) => d.disks, slot);
  });
}

/** Detaches the disk in `slot` (device_del on a running VM) and drops it from the config. */
export function detachDisk(vm: ManagedVm, slot: number): Promise<DiskSlot> {
  return vm.editDevices(async (view) => {
    const { config, qmp } = view;
    let device: string | null;
    if (qmp === null) {
      device = configSlots(config).disks.get(slot)?.device.id ?? null;
    } else {
      device = (await queryDevices(qmp)).block[slot]?.device ?? null;
    }
    if (device === null) throw badRequest(`slot: disk slot ${slot} (${guestDisk(slot)}) is empty`);
    if (qmp !== null) await call(qmp, "device_del", { id: device });
    // A disk hot-plugged through raw QMP is not in the config; then nothing changes there.
    await view.saveConfig(withoutDevice(config, device));
    return slotResult(vm, (d) => d.disks, slot);
  });
}

// ---- NICs --------------------------------------------------------------------

/**
 * Attaches a NIC on an existing tap or on a tap virgad creates on a bridge:
 * netdev_add and device_add at the slot on a running VM, the config of a
 * stopped one. A hot-plugged NIC has the slot's MAC (fixed at boot); the
 * config records it, so the guest sees the same MAC after a restart.
 */
export function attachNic(vm: ManagedVm, input: AttachNicInput): Promise<NicSlot> {
  return vm.editDevices(async (view) => {
    if ((input.tap === undefined) === (input.bridge === undefined)) {
      throw badRequest(
        "tap: give either tap (an existing tap's name) or bridge, not both or neither",
      );
    }
    const { config, qmp } = view;
    const running = qmp === null ? null : await queryDevices(qmp);
    const used = configSlots(config).nics;
    const occupant = (s: number): string | null =>
      running === null ? (used.get(s)?.device.id ?? null) : (running.net[s]?.device ?? null);
    const slot = input.slot ?? firstFree("NIC", (s) => occupant(s) !== null);
    // Checked here, not left to the VM: the tap made for this slot may be the occupant's.
    const by = occupant(slot);
    if (by !== null) throw occupied("NIC", slot, by);
    if (running === null && input.tap !== undefined && !interfaceExists(input.tap)) {
      throw badRequest(
        `tap: '${input.tap}' does not exist (create it with: ip tuntap add ${input.tap} mode tap)`,
      );
    }
    const id = freshId(`net${slot}`, config, running);
    return undoable(async (undo) => {
      let ifname = input.tap ?? "";
      let taps = [...view.taps];
      if (input.bridge !== undefined) {
        const tap: OwnedTap = { ifname: tapName(view.dir, slot), bridge: input.bridge };
        ifname = tap.ifname;
        if (interfaceExists(tap.ifname)) {
          // Left by a crash between creating it and recording it, or by another run directory.
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
        taps = [...taps.filter((t) => t.ifname !== tap.ifname), tap];
      }
      let mac = input.mac?.toLowerCase();
      if (qmp !== null) {
        await call(qmp, "netdev_add", { id, type: "tap", ifname });
        undo.push(() => call(qmp, "netdev_del", { id }));
        await call(qmp, "device_add", {
          id,
          driver: "virtio-net-mmio",
          addr: hex(slot),
          ...(mac === undefined ? {} : { mac }),
        });
        undo.push(() => call(qmp, "device_del", { id }));
        mac = (await queryDevices(qmp)).net[slot]?.mac ?? mac;
      }
      const device: NetDevice = { driver: "virtio-net-device", id, netdev: id, slot };
      if (mac !== undefined) device.mac = mac;
      await view.saveConfig({
        ...config,
        netdevs: [...config.netdevs, { id, ifname }],
        devices: [...config.devices, device],
      });
      undo.push(() => view.saveConfig(config));
      await view.saveTaps(taps);
      return slotResult(vm, (d) => d.nics, slot);
    });
  });
}

/** Detaches the NIC in `slot`, drops it from the config and deletes the tap if virgad made it. */
export function detachNic(vm: ManagedVm, slot: number): Promise<NicSlot> {
  return vm.editDevices(async (view) => {
    const { config, qmp } = view;
    let device: string | null;
    let ifname: string | null;
    if (qmp === null) {
      const used = configSlots(config).nics.get(slot);
      device = used?.device.id ?? null;
      ifname = used?.netdev !== undefined && "ifname" in used.netdev ? used.netdev.ifname : null;
    } else {
      const entry = (await queryDevices(qmp)).net[slot];
      device = entry?.device ?? null;
      ifname = entry?.ifname ?? null;
    }
    if (device === null) throw badRequest(`slot: NIC slot ${slot} (${guestNic(slot)}) is empty`);
    if (qmp !== null) await call(qmp, "device_del", { id: device });
    await view.saveConfig(withoutDevice(config, device));
    const owned = view.taps.find((t) => t.ifname === ifname);
    if (owned !== undefined) {
      // Kept on record when it cannot be deleted now: deleting the VM tries again.
      const deleted = await deleteTap(owned.ifname).then(
        () => true,
        () => false,
      );
      if (deleted) await view.saveTaps(view.taps.filter((t) => t !== owned));
    }
    return slotResult(vm, (d) => d.nics, slot);
  });
}

// ---- balloon -----------------------------------------------------------------

function requireLive(view: DeviceView, action: string): QmpLink {
  if (view.qmp === null) throw wrongState(view.id, view.state, action, LIVE_STATES);
  return view.qmp;
}

function requireBalloon(view: DeviceView): void {
  if (!view.config.devices.some((d) => d.driver === "virtio-balloon-device")) {
    throw new DaemonError(
      "PRECONDITION_FAILED",
      `VM '${view.id}' has no balloon (its config has no virtio-balloon-device; the balloon cannot be hot-plugged)`,
    );
  }
}

/** virga-query-balloon: the balloon and the guest's memory statistics. */
export async function balloonInfo(vm: ManagedVm): Promise<Balloon> {
  const view = vm.deviceView();
  const qmp = requireLive(view, "read the balloon of");
  requireBalloon(view);
  const info = (await call(qmp, "virga-query-balloon")) as BalloonInfo;
  return {
    actualBytes: info.actual,
    targetBytes: info.target,
    memoryBytes: info.memory,
    stats: info.stats,
    statsUpdatedAt:
      info["stats-updated"] === undefined
        ? null
        : new Date(info["stats-updated"] * 1000).toISOString(),
  };
}

/** Sets the balloon target (the guest's memory; the VM clamps it to boot memory) and records it. */
export function setBalloon(vm: ManagedVm, bytes: number): Promise<Balloon> {
  return vm
    .editDevices(async (view) => {
      const qmp = requireLive(view, "set the balloon of");
      requireBalloon(view);
      await call(qmp, "balloon", { value: bytes });
      await view.saveBalloonTarget(bytes < view.config.memoryBytes ? bytes : null);
    })
    .then(() => balloonInfo(vm));
}
