// Hot-plug (the seed's requests verbatim): blockdev-add/-del, netdev_add/_del,
// device_add/_del, virga-query-devices. On the microvm into its virtio-mmio
// slots (docs/devices.md); on q35 into a pcie-root-port's slot, native PCIe
// hot-plug (docs/q35.md).
// Arguments are checked and normalised here, each mistake naming its field;
// the VM process then checks them against its slots and backends.
import { z } from "zod";
import { INTERFACE_NAME_RULE, MAC_PATTERN, isInterfaceName } from "../../config/vm-config";
import type { DeviceAddArgs } from "../../vmm/device-types";
import { defineCommand } from "../command";
import { genericError } from "../wire";

const nonEmpty = z.string().min(1);

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value === "string" ? `'${value}'` : typeof value;
}

/** blockdev-add's `file`: only the {driver: "file", filename} form. */
function fileName(file: unknown): string {
  const wanted = `{"driver": "file", "filename": <path>}`;
  if (typeof file === "string") {
    throw genericError(`file: node references ('${file}') are not supported; expected ${wanted}`);
  }
  if (typeof file !== "object" || file === null || Array.isArray(file)) {
    throw genericError(`file: expected ${wanted}, got ${describe(file)}`);
  }
  const record = file as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== "driver" && key !== "filename")
      throw genericError(`Parameter 'file.${key}' is unexpected`);
  }
  if (record.driver !== "file") {
    throw genericError(
      record.driver === undefined
        ? "Parameter 'file.driver' is missing"
        : `file.driver: expected 'file' (a raw image file or block device), got ${describe(record.driver)}`,
    );
  }
  if (typeof record.filename !== "string" || record.filename === "") {
    throw genericError(
      record.filename === undefined
        ? "Parameter 'file.filename' is missing"
        : `file.filename: expected a path, got ${describe(record.filename)}`,
    );
  }
  return record.filename;
}

export const blockdevAdd = defineCommand({
  name: "blockdev-add",
  args: z
    .object({
      "node-name": nonEmpty,
      driver: z.literal("raw").optional(),
      file: z.unknown(),
      "read-only": z.boolean().optional(),
      cache: z.object({ direct: z.boolean().optional() }).strict().optional(),
    })
    .strict(),
  async handler(args, { vm }) {
    if (args.file === undefined) throw genericError("Parameter 'file' is missing");
    await vm.blockdevAdd({
      nodeName: args["node-name"],
      filename: fileName(args.file),
      readOnly: args["read-only"] ?? false,
      direct: args.cache?.direct ?? false,
    });
    return {};
  },
});

export const blockdevDel = defineCommand({
  name: "blockdev-del",
  args: z.object({ "node-name": nonEmpty }).strict(),
  async handler(args, { vm }) {
    await vm.blockdevDel(args["node-name"]);
    return {};
  },
});

export const netdevAdd = defineCommand({
  name: "netdev_add",
  args: z
    .object({
      id: nonEmpty,
      type: z.literal("tap").optional(),
      ifname: z.string().optional(),
      fd: z.string().optional(),
    })
    .strict(),
  async handler(args, { vm }) {
    if ((args.ifname === undefined) === (args.fd === undefined)) {
      throw genericError(
        "netdev_add needs exactly one of 'ifname' (a tap's name) and 'fd' (a getfd name)",
      );
    }
    if (args.ifname !== undefined) {
      if (!isInterfaceName(args.ifname)) {
        throw genericError(
          `ifname: '${args.ifname}' is not an interface name (${INTERFACE_NAME_RULE})`,
        );
      }
      await vm.netdevAdd({ id: args.id, ifname: args.ifname });
    } else {
      await vm.netdevAdd({ id: args.id, fdName: args.fd });
    }
    return {};
  },
});

export const netdevDel = defineCommand({
  name: "netdev_del",
  args: z.object({ id: nonEmpty }).strict(),
  async handler(args, { vm }) {
    await vm.netdevDel(args.id);
    return {};
  },
});

/**
 * q35: `virtio-blk-pci` / `virtio-net-pci` into slot 0 of a root port
 * (`bus`, `addr` 0x0). The VM process checks the bus, its slot and the
 * backend; here, what the request itself says.
 */
/** device_add's arguments, once the schema has checked their types. */
interface DeviceAddInput {
  id: string;
  driver: string;
  addr?: string | number;
  lun?: number;
  drive?: string;
  netdev?: string;
  bus?: string;
  mac?: string;
  host?: string;
  sysfsdev?: string;
}

function q35Request(args: DeviceAddInput): DeviceAddArgs {
  const { driver } = args;
  const block = driver === "virtio-blk-pci";
  if (driver === "vfio-pci") return vfioRequest(args);
  if (!block && driver !== "virtio-net-pci") {
    if (driver === "pcie-root-port") {
      throw genericError(
        "driver: root ports cannot be hot-plugged; give them on the command line (-device pcie-root-port,...)",
      );
    }
    if (driver.startsWith("virtio-balloon")) {
      throw genericError(
        "driver: the balloon cannot be hot-plugged; start the VM with -device virtio-balloon-pci",
      );
    }
    throw genericError(
      BLOCK_DRIVERS.has(driver) || NET_DRIVERS.has(driver)
        ? `driver: '${driver}' is a microvm device; the q35 machine takes virtio-blk-pci and virtio-net-pci`
        : `driver: unknown device type '${driver}'; the q35 machine hot-plugs virtio-blk-pci, virtio-net-pci and vfio-pci`,
    );
  }
  if (args.host !== undefined) throw genericError("host: only vfio-pci takes host");
  if (args.sysfsdev !== undefined) throw genericError("sysfsdev: only vfio-pci takes sysfsdev");
  requireRootPortSlot(args);
  if (block && args.netdev !== undefined)
    throw genericError(`netdev: '${driver}' takes drive, not netdev`);
  if (!block && args.drive !== undefined)
    throw genericError(`drive: '${driver}' takes netdev, not drive`);
  if (block && args.mac !== undefined) throw genericError("mac: only NICs have a MAC address");
  if (args.mac !== undefined && !MAC_PATTERN.test(args.mac)) {
    throw genericError(`mac: '${args.mac}' is not a unicast MAC address like 52:54:00:12:34:56`);
  }
  const request: DeviceAddArgs = {
    id: args.id,
    kind: block ? "block" : "net",
    backend: args.drive ?? args.netdev ?? args.id,
    backendField: args.drive !== undefined ? "drive" : args.netdev !== undefined ? "netdev" : "id",
    bus: args.bus,
    slot: 0,
    slotField: "addr",
  };
  if (args.mac !== undefined) request.mac = args.mac.toLowerCase();
  return request;
}

/** What every q35 hot-plug says of its place: a root port's bus, its slot 0x0. */
function requireRootPortSlot(args: DeviceAddInput): void {
  if (args.lun !== undefined)
    throw genericError("lun: the q35 machine takes bus (a root port) and addr 0x0");
  if (args.bus === undefined) {
    throw genericError(
      `bus: missing; ${args.driver} is hot-plugged into a pcie-root-port (its id)`,
    );
  }
  if (args.addr !== undefined) {
    // QEMU's form, slot[.function]: only function 0 of slot 0 is a root port's.
    const m = /^(?:0x)?([0-9a-f]+)(?:\.(?:0x)?([0-9a-f]+))?$/i.exec(String(args.addr).trim());
    if (!m || parseInt(m[1] ?? "", 16) !== 0 || parseInt(m[2] ?? "0", 16) !== 0) {
      throw genericError(
        `addr: a root port has one slot; expected "0x0", got ${describe(args.addr)}`,
      );
    }
  }
}

/**
 * q35: `vfio-pci` into slot 0 of a root port, the host function by `host`
 * (DDDD:BB:SS.F) or `sysfsdev`. The VM process opens it and says by name
 * why it cannot (no /dev/vfio, not bound to vfio-pci, a group not viable).
 */
function vfioRequest(args: DeviceAddInput): DeviceAddArgs {
  for (const key of ["drive", "netdev", "mac"] as const) {
    if (args[key] !== undefined)
      throw genericError(`${key}: vfio-pci takes host or sysfsdev, not ${key}`);
  }
  if ((args.host === undefined) === (args.sysfsdev === undefined)) {
    throw genericError(
      "host: vfio-pci takes exactly one of host (DDDD:BB:SS.F) and sysfsdev (a sysfs directory)",
    );
  }
  if (args.host !== undefined && !HOST_ADDRESS.test(args.host)) {
    throw genericError(
      `host: expected a PCI address DDDD:BB:SS.F such as 0000:00:03.0, got ${describe(args.host)}`,
    );
  }
  if (args.sysfsdev !== undefined && !args.sysfsdev.startsWith("/")) {
    throw genericError(
      `sysfsdev: expected an absolute path such as /sys/bus/pci/devices/0000:00:03.0, got ${describe(args.sysfsdev)}`,
    );
  }
  requireRootPortSlot(args);
  const request: DeviceAddArgs = {
    id: args.id,
    kind: "vfio",
    bus: args.bus,
    slot: 0,
    slotField: "addr",
  };
  if (args.host !== undefined) request.host = args.host;
  if (args.sysfsdev !== undefined) request.sysfsdev = args.sysfsdev;
  return request;
}

/** DDDD:BB:SS.F, or BB:SS.F (domain 0000), as `-device vfio-pci,host=` takes it. */
const HOST_ADDRESS = /^(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/i;

const BLOCK_DRIVERS = new Set(["virtio-blk-mmio", "virtio-blk-device"]);
const NET_DRIVERS = new Set(["virtio-net-mmio", "virtio-net-device"]);
const STANDARD_DRIVERS = new Set([
  "virtio-blk-pci",
  "virtio-net-pci",
  "vfio-pci",
  "pcie-root-port",
  "virtio-balloon-pci",
]);

/** `addr` as the seed writes it ("0x1"), or a plain number. */
function slotFromAddr(addr: string | number): number {
  const text = String(addr).trim();
  const value = /^0x[0-9a-f]+$/i.test(text)
    ? parseInt(text, 16)
    : /^\d+$/.test(text)
      ? Number(text)
      : NaN;
  if (!Number.isSafeInteger(value)) {
    throw genericError(`addr: expected a slot number such as "0x1", got ${describe(addr)}`);
  }
  return value;
}

export const deviceAdd = defineCommand({
  name: "device_add",
  args: z
    .object({
      id: nonEmpty,
      driver: nonEmpty,
      addr: z.union([z.string(), z.number().int().min(0)]).optional(),
      lun: z.number().int().min(0).optional(),
      drive: nonEmpty.optional(),
      netdev: nonEmpty.optional(),
      bus: z.string().optional(),
      mac: z.string().optional(),
      host: z.string().optional(),
      sysfsdev: z.string().optional(),
    })
    .strict(),
  async handler(args, { vm }) {
    const { driver } = args;
    if (vm.config.machine === "q35") {
      await vm.deviceAdd(q35Request(args));
      return {};
    }
    const block = BLOCK_DRIVERS.has(driver);
    if (!block && !NET_DRIVERS.has(driver)) {
      if (STANDARD_DRIVERS.has(driver)) {
        throw genericError(`driver: '${driver}' needs the standard machine (-machine q35)`);
      }
      if (driver.startsWith("virtio-balloon")) {
        throw genericError(
          "driver: the balloon cannot be hot-plugged on the microvm; start the VM with -device virtio-balloon-device",
        );
      }
      throw genericError(
        `driver: unknown device type '${driver}'; the microvm takes virtio-blk-mmio and virtio-net-mmio`,
      );
    }
    if (args.bus !== undefined)
      throw genericError("bus: the microvm has no buses; give the slot with addr");
    if (args.host !== undefined)
      throw genericError("host: only vfio-pci takes host (standard machine)");
    if (args.sysfsdev !== undefined)
      throw genericError("sysfsdev: only vfio-pci takes sysfsdev (standard machine)");
    if (args.addr !== undefined && args.lun !== undefined) {
      throw genericError("give the slot with addr or with lun, not both");
    }
    if (block && args.netdev !== undefined)
      throw genericError(`netdev: '${driver}' takes drive, not netdev`);
    if (!block && args.drive !== undefined)
      throw genericError(`drive: '${driver}' takes netdev, not drive`);
    if (block && args.mac !== undefined) throw genericError("mac: only NICs have a MAC address");
    if (args.mac !== undefined && !MAC_PATTERN.test(args.mac)) {
      throw genericError(`mac: '${args.mac}' is not a unicast MAC address like 52:54:00:12:34:56`);
    }
    const request: DeviceAddArgs = {
      id: args.id,
      kind: block ? "block" : "net",
      backend: args.drive ?? args.netdev ?? args.id,
      backendField:
        args.drive !== undefined ? "drive" : args.netdev !== undefined ? "netdev" : "id",
    };
    if (args.addr !== undefined) {
      request.slot = slotFromAddr(args.addr);
      request.slotField = "addr";
    } else if (args.lun !== undefined) {
      // lun N is vd(b+N): the seed keeps vda for the root disk.
      request.slot = args.lun + 1;
      request.slotField = "lun";
    }
    if (args.mac !== undefined) request.mac = args.mac.toLowerCase();
    await vm.deviceAdd(request);
    return {};
  },
});

/**
 * The microvm unplugs at once: DEVICE_DELETED comes before the return. On
 * q35 the return comes first, the event once the guest has let go.
 */
export const deviceDel = defineCommand({
  name: "device_del",
  args: z.object({ id: nonEmpty }).strict(),
  async handler(args, { vm }) {
    await vm.deviceDel(args.id);
    return {};
  },
});

export const virgaQueryDevices = defineCommand({
  name: "virga-query-devices",
  args: z.object({}).strict(),
  handler: (_args, { vm }) => vm.devices(),
});
