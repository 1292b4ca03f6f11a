// Disks, NICs and VFIO functions of a q35 VM (docs/q35.md): PCI functions
// on pcie.0 or in slot 0 of a root port. Hot-plug goes into a free root
// port (blockdev-add/netdev_add, then device_add with bus=<port>,addr=0x0);
// a stopped VM's config is edited instead. Either way config.json records
// the function with its bus and addr, so a restart brings it back there.
//
// Unplug is the guest's to finish: device_del answers {} at once, and the
// device stays, `detaching`, until the VM's DEVICE_DELETED (the guest has
// powered the slot off). Then virgad deletes its backend and drops it from
// the config (finishUnplug). A VM that ends meanwhile finishes them too.
import {
  ROOT_BUS,
  isRootPort,
  rootPortsOf,
  type PciDevice,
  type RootPort,
  type VfioDevice,
  type VmConfig,
} from "../config/vm-config";
import type { ImageDirs } from "./confine";
import {
  addBlockBackend,
  bridgeOf,
  call,
  fileSize,
  freshId,
  makeBridgeTap,
  undoable,
  withoutDevice,
} from "./device-steps";
import { DaemonError, badRequest } from "./errors";
import { hostHasPci } from "./host-pci";
import { deleteTap, interfaceExists, tapName } from "./taps";
import type { DeviceView, ManagedVm } from "./vm";

/** Where QMP's device_add puts a hot-plugged function: slot 0 of the root port. */
const HOTPLUG_ADDR = "0x0";
/** The same place as the config writes it (<slot>.<function>). */
const HOTPLUG_PLACE = "0x0.0";

export interface PciFunction {
  id: string;
  driver: PciDevice["driver"];
  bus: string;
  addr: string;
  /** virtio-blk-pci: the backend file. */
  file: string | null;
  readOnly: boolean;
  direct: boolean;
  sizeBytes: number | null;
  /** virtio-net-pci: the tap, the bridge virgad made it on, the MAC given. */
  ifname: string | null;
  bridge: string | null;
  mac: string | null;
  /** vfio-pci: the host function passed through. */
  host: string | null;
  /** device_del was sent and the guest has not let go yet (no DEVICE_DELETED). */
  detaching: boolean;
}

export interface RootPortSlot {
  id: string;
  port: number;
  addr: string;
  chassis: number | null;
  /** The function in its slot 0; null when free (what hot-plug is offered). */
  device: string | null;
}

export interface PciView {
  rootPorts: RootPortSlot[];
  pci: PciFunction[];
}

export interface AttachPciDiskInput {
  file: string;
  readOnly?: boolean | undefined;
  direct?: boolean | undefined;
  /** A root port; without it, the first free one. */
  bus?: string | undefined;
}

export interface AttachPciNicInput {
  tap?: string | undefined;
  bridge?: string | undefined;
  mac?: string | undefined;
  bus?: string | undefined;
}

export interface AttachVfioInput {
  /** The host function, DDDD:BB:SS.F. */
  host: string;
  bus?: string | undefined;
}

/** A function a bus holds (root ports are buses themselves). */
function isPci(device: VmConfig["devices"][number]): device is PciDevice {
  return "bus" in device && !isRootPort(device);
}

function occupantOf(config: VmConfig, bus: string): string | null {
  return config.devices.find((d) => isPci(d) && d.bus === bus)?.id ?? null;
}

/** The root port a hot-plug goes into: the one asked for, if it is a free root port, else the first free one. */
function rootPortFor(view: DeviceView, bus: string | undefined): RootPort {
  const ports = rootPortsOf(view.config);
  const names = ports.map((p) => p.id).join(", ");
  if (ports.length === 0) {
    throw badRequest(
      `bus: VM '${view.id}' has no root ports; a q35 VM hot-plugs into slot 0 of a root port (add pcie-root-port devices to its config while it is stopped)`,
    );
  }
  if (bus === undefined) {
    const free = ports.find((p) => occupantOf(view.config, p.id) === null);
    if (free === undefined) throw badRequest(`bus: every root port is occupied (${names})`);
    return free;
  }
  if (bus === ROOT_BUS) {
    throw badRequest(`bus: ${ROOT_BUS} has no hot-plug controller; give a root port (${names})`);
  }
  const port = ports.find((p) => p.id === bus);
  if (port === undefined) {
    throw badRequest(`bus: '${bus}' is not a root port of VM '${view.id}' (root ports: ${names})`);
  }
  const by = occupantOf(view.config, bus);
  if (by !== null) {
    const why = view.unplugging.includes(by) ? " (being detached: the guest has not let go)" : "";
    throw badRequest(`bus: root port '${bus}' is occupied by '${by}'${why}`);
  }
  return port;
}

async function functionOf(view: DeviceView, device: PciDevice): Promise<PciFunction> {
  const { config } = view;
  const drive = "drive" in device ? config.drives.find((d) => d.id === device.drive) : undefined;
  const netdev =
    "netdev" in device ? config.netdevs.find((n) => n.id === device.netdev) : undefined;
  const ifname = netdev !== undefined && "ifname" in netdev ? netdev.ifname : null;
  return {
    id: device.id,
    driver: device.driver,
    bus: device.bus,
    addr: device.addr,
    file: drive?.file ?? null,
    readOnly: drive?.readOnly ?? false,
    direct: drive?.direct ?? false,
    sizeBytes: await fileSize(drive?.file),
    ifname,
    bridge: bridgeOf(view, ifname),
    mac: "mac" in device ? (device.mac ?? null) : null,
    host: device.driver === "vfio-pci" ? (device.host ?? device.sysfsdev ?? null) : null,
    detaching: view.unplugging.includes(device.id),
  };
}

/** A q35 VM's root ports and PCI functions, from its config and the unplugs under way. */
export async function pciView(view: DeviceView): Promise<PciView> {
  const { config } = view;
  const pci: PciFunction[] = [];
  for (const device of config.devices) if (isPci(device)) pci.push(await functionOf(view, device));
  return {
    rootPorts: rootPortsOf(config).map((p) => ({
      id: p.id,
      port: p.port,
      addr: p.addr,
      chassis: p.chassis ?? null,
      device: occupantOf(config, p.id),
    })),
    pci,
  };
}

async function added(vm: ManagedVm, id: string): Promise<PciFunction> {
  const view = vm.deviceView();
  const device = view.config.devices.find((d) => d.id === id);
  if (device === undefined || !isPci(device)) {
    throw new DaemonError("INTERNAL_SERVER_ERROR", `device '${id}' vanished from the config`);
  }
  return functionOf(view, device);
}

/** Attaches a disk into a root port: blockdev-add and device_add virtio-blk-pci on a running VM. */
export async function attachPciDisk(
  vm: ManagedVm,
  images: ImageDirs,
  input: AttachPciDiskInput,
): Promise<PciFunction> {
  const id = await vm.editDevices(async (view) => {
    const file = await images.check("file", input.file, "disk");
    const readOnly = input.readOnly ?? false;
    const direct = input.direct ?? false;
    const { config, qmp } = view;
    const port = rootPortFor(view, input.bus);
    const id = freshId(`disk-${port.id}`, config, null);
    await undoable(async (undo) => {
      if (qmp !== null) {
        await addBlockBackend(qmp, undo, id, { file, readOnly, direct });
        await call(qmp, "device_add", {
          id,
          driver: "virtio-blk-pci",
          drive: id,
          bus: port.id,
          addr: HOTPLUG_ADDR,
        });
      }
      await view.saveConfig({
        ...config,
        drives: [...config.drives, { id, file, readOnly, direct }],
        devices: [
          ...config.devices,
          { driver: "virtio-blk-pci", id, drive: id, bus: port.id, addr: HOTPLUG_PLACE },
        ],
      });
    });
    return id;
  });
  return added(vm, id);
}

/** Attaches a NIC into a root port, on an existing tap or on a tap virgad makes on a bridge. */
export async function attachPciNic(vm: ManagedVm, input: AttachPciNicInput): Promise<PciFunction> {
  const id = await vm.editDevices(async (view) => {
    if ((input.tap === undefined) === (input.bridge === undefined)) {
      throw badRequest(
        "tap: give either tap (an existing tap's name) or bridge, not both or neither",
      );
    }
    const { config, qmp } = view;
    const port = rootPortFor(view, input.bus);
    if (qmp === null && input.tap !== undefined && !interfaceExists(input.tap)) {
      throw badRequest(
        `tap: '${input.tap}' does not exist (create it with: ip tuntap add ${input.tap} mode tap)`,
      );
    }
    const id = freshId(`net-${port.id}`, config, null);
    const mac = input.mac?.toLowerCase();
    await undoable(async (undo) => {
      let ifname = input.tap ?? "";
      let taps = [...view.taps];
      if (input.bridge !== undefined) {
        ifname = tapName(view.dir, port.port);
        taps = await makeBridgeTap(view, undo, { ifname, bridge: input.bridge });
      }
      if (qmp !== null) {
        await call(qmp, "netdev_add", { id, type: "tap", ifname });
        undo.push(() => call(qmp, "netdev_del", { id }));
        await call(qmp, "device_add", {
          id,
          driver: "virtio-net-pci",
          netdev: id,
          bus: port.id,
          addr: HOTPLUG_ADDR,
          ...(mac === undefined ? {} : { mac }),
        });
      }
      await view.saveConfig({
        ...config,
        netdevs: [...config.netdevs, { id, ifname }],
        devices: [
          ...config.devices,
          {
            driver: "virtio-net-pci",
            id,
            netdev: id,
            bus: port.id,
            addr: HOTPLUG_PLACE,
            ...(mac === undefined ? {} : { mac }),
          },
        ],
      });
      undo.push(() => view.saveConfig(config));
      await view.saveTaps(taps);
    });
    return id;
  });
  return added(vm, id);
}

/**
 * Passes a host PCI function through into a root port (device_add vfio-pci
 * on a running VM; the config of a stopped one, for the command line). The
 * VM refuses what it cannot do (no /dev/vfio, a group not viable), and its
 * message comes back as it is.
 */
export async function attachVfio(vm: ManagedVm, input: AttachVfioInput): Promise<PciFunction> {
  const id = await vm.editDevices(async (view) => {
    if (!hostHasPci(input.host)) {
      throw badRequest(
        `host: this host has no PCI device ${input.host} (host.pciDevices lists what it has)`,
      );
    }
    const { config, qmp } = view;
    const port = rootPortFor(view, input.bus);
    const id = freshId(`vfio-${port.id}`, config, null);
    if (qmp !== null) {
      await call(qmp, "device_add", {
        id,
        driver: "vfio-pci",
        host: input.host,
        bus: port.id,
        addr: HOTPLUG_ADDR,
      });
    }
    const device: VfioDevice = {
      driver: "vfio-pci",
      id,
      host: input.host,
      bus: port.id,
      addr: HOTPLUG_PLACE,
    };
    await view.saveConfig({ ...config, devices: [...config.devices, device] });
    return id;
  });
  return added(vm, id);
}

/** Drops a device from the config, and the tap virgad made for it. */
async function dropDevice(view: DeviceView, id: string): Promise<void> {
  const device = view.config.devices.find((d) => d.id === id);
  const netdev =
    device !== undefined && "netdev" in device
      ? view.config.netdevs.find((n) => n.id === device.netdev)
      : undefined;
  await view.saveConfig(withoutDevice(view.config, id));
  const ifname = netdev !== undefined && "ifname" in netdev ? netdev.ifname : null;
  const owned = view.taps.find((t) => t.ifname === ifname);
  if (owned !== undefined) {
    // Kept on record when it cannot be deleted now: deleting the VM tries again.
    const deleted = await deleteTap(owned.ifname).then(
      () => true,
      () => false,
    );
    if (deleted) await view.saveTaps(view.taps.filter((t) => t !== owned));
  }
}

/**
 * Detaches a PCI function by its id. A stopped VM's config loses it at once
 * (null: it is gone); a running VM is asked to unplug it, and the function
 * comes back `detaching` until the guest lets go.
 */
export function detachPci(vm: ManagedVm, id: string): Promise<PciFunction | null> {
  return vm.editDevices(async (view) => {
    const device = view.config.devices.find((d) => d.id === id);
    if (device === undefined || !isPci(device)) {
      throw new DaemonError("NOT_FOUND", `device: VM '${view.id}' has no PCI device '${id}'`);
    }
    if (view.unplugging.includes(id)) {
      throw new DaemonError(
        "CONFLICT",
        `device: '${id}' is being detached already; the guest has not let go of it yet (no DEVICE_DELETED)`,
      );
    }
    if (view.qmp === null) {
      await dropDevice(view, id);
      return null;
    }
    await call(view.qmp, "device_del", { id });
    await view.saveUnplugging([...view.unplugging, id]);
    return functionOf(vm.deviceView(), device);
  });
}

/** The guest let go of a device (DEVICE_DELETED), or the VM ended: its backend and config entry go. */
export async function finishUnplug(vm: ManagedVm, id: string): Promise<void> {
  if (!vm.unplugging.includes(id)) return;
  await vm.editDevices(async (view) => {
    if (!view.unplugging.includes(id)) return;
    const device = view.config.devices.find((d) => d.id === id);
    if (view.qmp !== null && device !== undefined) {
      // The backend outlives the device on q35; a failure leaves it to the VM's end.
      if ("drive" in device) {
        await call(view.qmp, "blockdev-del", { "node-name": device.drive }).catch(() => undefined);
      } else if ("netdev" in device) {
        await call(view.qmp, "netdev_del", { id: device.netdev }).catch(() => undefined);
      }
    }
    if (device !== undefined) await dropDevice(view, id);
    await view.saveUnplugging(view.unplugging.filter((u) => u !== id));
  });
}

/**
 * After a virgad restart: an unplug whose DEVICE_DELETED came while no
 * virgad listened is finished now, if the VM no longer has the device.
 */
export async function settleUnplugs(vm: ManagedVm): Promise<void> {
  if (vm.unplugging.length === 0) return;
  const { qmp } = vm.deviceView();
  if (qmp === null) return;
  const info = (await call(qmp, "virga-query-devices")) as { pci?: { id?: unknown }[] };
  const present = new Set((info.pci ?? []).map((f) => f.id));
  for (const id of vm.unplugging) if (!present.has(id)) await finishUnplug(vm, id);
}
