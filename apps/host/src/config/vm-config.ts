// The one description of a VM that every front end agrees on: virga-vmm's
// flags parse into it, toArgv() turns it back into flags, and the host daemon
// will build command lines from it. Pure data: nothing here touches the file
// system (existence checks belong to the front end that reads the files).
import { z } from "zod";

export const MIB = 1024 * 1024;
export const MIN_MEMORY_BYTES = 16 * MIB;
export const MAX_MEMORY_BYTES = 256 * 1024 * MIB;
export const MAX_VCPUS = 254;
/** microvm block slots created at boot (QMP.md: 6 block + 2 NIC). */
export const BLOCK_SLOTS = 6;
/** microvm NIC slots (eth0, eth1), present from boot (docs/devices.md). */
export const NET_SLOTS = 2;
/** A unicast MAC address (the first octet's bit 0 clear). */
export const MAC_PATTERN = /^[0-9a-fA-F][02468aceACE](:[0-9a-fA-F]{2}){5}$/;
/** Linux's rule for an interface name (dev_valid_name): 1-15 bytes, not
 *  "." or "..", no '/', ':' or whitespace. */
export function isInterfaceName(name: string): boolean {
  const bytes = Buffer.byteLength(name, "utf8");
  return bytes >= 1 && bytes <= 15 && name !== "." && name !== ".." && !/[/:\s]/.test(name);
}
export const INTERFACE_NAME_RULE = "1-15 bytes, not '.' or '..', no '/', ':' or whitespace";

const count = z
  .number()
  .int()
  .min(1, `must be 1..${MAX_VCPUS}`)
  .max(MAX_VCPUS, `must be 1..${MAX_VCPUS}`);

export const smpSchema = z
  .object({
    cpus: count,
    maxCpus: count,
    sockets: count,
    cores: count,
    threads: count,
  })
  .strict()
  .superRefine((smp, ctx) => {
    if (smp.cpus > smp.maxCpus) {
      ctx.addIssue({
        code: "custom",
        message: `cpus (${smp.cpus}) exceeds maxcpus (${smp.maxCpus})`,
      });
    }
    const product = smp.sockets * smp.cores * smp.threads;
    if (product !== smp.maxCpus) {
      ctx.addIssue({
        code: "custom",
        message: `sockets*cores*threads (${smp.sockets}*${smp.cores}*${smp.threads}=${product}) must equal maxcpus (${smp.maxCpus})`,
      });
    }
  });
export type Smp = z.infer<typeof smpSchema>;

export const driveSchema = z
  .object({
    id: z.string().min(1),
    file: z.string().min(1),
    readOnly: z.boolean(),
    direct: z.boolean(),
  })
  .strict();
export type Drive = z.infer<typeof driveSchema>;

export const netdevSchema = z.union([
  z
    .object({
      id: z.string().min(1),
      /** An existing tap, by name. */
      ifname: z
        .string()
        .refine(isInterfaceName, `must be an interface name (${INTERFACE_NAME_RULE})`),
    })
    .strict(),
  z
    .object({
      id: z.string().min(1),
      /** A tap fd the VM process inherited (virga-vmm run by hand). */
      fd: z.number().int().min(3),
    })
    .strict(),
]);
export type Netdev = z.infer<typeof netdevSchema>;

export const blockDeviceSchema = z
  .object({
    driver: z.literal("virtio-blk-device"),
    id: z.string().min(1),
    /** The -drive id this device's backend comes from. */
    drive: z.string().min(1),
    /** addr=: the block slot (0 = vda); without it, the first free one in order. */
    slot: z
      .number()
      .int()
      .min(0)
      .max(BLOCK_SLOTS - 1)
      .optional(),
  })
  .strict();
export type BlockDevice = z.infer<typeof blockDeviceSchema>;

export const unicastMac = z
  .string()
  .regex(MAC_PATTERN, "must be a unicast MAC address like 52:54:00:12:34:56");
const macField = unicastMac.optional();

export const netDeviceSchema = z
  .object({
    driver: z.literal("virtio-net-device"),
    id: z.string().min(1),
    /** The -netdev id this NIC's tap comes from. */
    netdev: z.string().min(1),
    mac: macField,
    /** addr=: the NIC slot (0 = eth0); without it, the first free one in order. */
    slot: z
      .number()
      .int()
      .min(0)
      .max(NET_SLOTS - 1)
      .optional(),
  })
  .strict();
export type NetDevice = z.infer<typeof netDeviceSchema>;

export const balloonDeviceSchema = z
  .object({
    driver: z.literal("virtio-balloon-device"),
    id: z.string().min(1),
    deflateOnOom: z.boolean(),
    freePageReporting: z.boolean(),
  })
  .strict();
export type BalloonDevice = z.infer<typeof balloonDeviceSchema>;

/** The q35 root bus. */
export const ROOT_BUS = "pcie.0";
/** The address of slot 0 of a root port, the only one a root port has (PCIe: one device per link). */
export const ROOT_PORT_SLOT = "0x0.0";
const pciAddr = z
  .string()
  .regex(/^0x[0-9a-f]{1,2}\.[0-7]$/, "must be <slot>.<function> like 0x3.0");

/** Where a q35 PCI function sits: its bus and addr=<slot>.<function>, as virga-vmm prints it. */
const pciPlace = {
  /** pcie.0, or the id of a root port (a root port's id names its secondary bus). */
  bus: z.string().min(1),
  addr: pciAddr,
};

/**
 * q35: a PCIe root port on pcie.0 (StratoVirt's `-device pcie-root-port`
 * keys, as virga-vmm prints them); its id names its secondary bus, and
 * hot-plug goes into its slot 0.
 */
export const pcieRootPortSchema = z
  .object({
    driver: z.literal("pcie-root-port"),
    id: z.string().min(1),
    port: z.number().int().min(0, "must be 0..255").max(255, "must be 0..255"),
    ...pciPlace,
    multifunction: z.boolean().optional(),
    chassis: z.number().int().min(0, "must be 0..255").max(255, "must be 0..255").optional(),
  })
  .strict();
export type RootPort = z.infer<typeof pcieRootPortSchema>;

/** A host PCI function, as lspci and sysfs name it: domain:bus:slot.function. */
export const HOST_PCI_PATTERN = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;

/**
 * A host function passed through (docs/q35.md, "VFIO"), named by its
 * address or its sysfs directory: exactly one of the two (checked with the
 * whole config), as virga-vmm prints it.
 */
export const vfioDeviceSchema = z
  .object({
    driver: z.literal("vfio-pci"),
    id: z.string().min(1),
    host: z
      .string()
      .regex(HOST_PCI_PATTERN, "must be a host PCI address like 0000:1a:00.3")
      .optional(),
    sysfsdev: z
      .string()
      .startsWith("/", "must be an absolute path such as /sys/bus/pci/devices/0000:00:03.0")
      .optional(),
    ...pciPlace,
  })
  .strict();
export type VfioDevice = z.infer<typeof vfioDeviceSchema>;

export const pciBlockDeviceSchema = z
  .object({
    driver: z.literal("virtio-blk-pci"),
    id: z.string().min(1),
    drive: z.string().min(1),
    ...pciPlace,
  })
  .strict();
export const pciNetDeviceSchema = z
  .object({
    driver: z.literal("virtio-net-pci"),
    id: z.string().min(1),
    netdev: z.string().min(1),
    mac: macField,
    ...pciPlace,
  })
  .strict();
export const pciBalloonDeviceSchema = z
  .object({
    driver: z.literal("virtio-balloon-pci"),
    id: z.string().min(1),
    ...pciPlace,
    deflateOnOom: z.boolean(),
    freePageReporting: z.boolean(),
  })
  .strict();

export const deviceSchema = z.discriminatedUnion("driver", [
  blockDeviceSchema,
  netDeviceSchema,
  balloonDeviceSchema,
  pciBlockDeviceSchema,
  pciNetDeviceSchema,
  pciBalloonDeviceSchema,
  vfioDeviceSchema,
  pcieRootPortSchema,
]);
export type Device = z.infer<typeof deviceSchema>;
/** The functions that sit on a q35 PCI bus, root ports aside: what a root port or pcie.0 holds. */
export type PciDevice = Exclude<Extract<Device, { bus: string }>, RootPort>;

export function isRootPort(device: Device): device is RootPort {
  return device.driver === "pcie-root-port";
}

/** A q35 config's root ports, in order. */
export function rootPortsOf(config: { devices: Device[] }): RootPort[] {
  return config.devices.filter(isRootPort);
}

export const serialSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("stdio") }).strict(),
  z.object({ kind: z.literal("pty") }).strict(),
  z.object({ kind: z.literal("none") }).strict(),
  z.object({ kind: z.literal("file"), path: z.string().min(1) }).strict(),
  z.object({ kind: z.literal("socket"), path: z.string().min(1) }).strict(),
]);
export type Serial = z.infer<typeof serialSchema>;

/** Default per-client QMP rate (commands per second), StratoVirt's figure. */
export const DEFAULT_QMP_RATE_LIMIT = 100;

const rateLimit = z.number().int().min(0); // 0 = unlimited

export const qmpSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("unix"), path: z.string().min(1), rateLimit }).strict(),
  z
    .object({
      kind: z.literal("tcp"),
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535),
      rateLimit,
    })
    .strict(),
]);
export type QmpEndpoint = z.infer<typeof qmpSchema>;

const MICROVM_DRIVERS: Partial<Record<Device["driver"], string>> = {
  "virtio-blk-device": "virtio-blk-pci",
  "virtio-net-device": "virtio-net-pci",
  "virtio-balloon-device": "virtio-balloon-pci",
};

/** Slot and function of an addr this schema accepted (0x<slot>.<fn>). */
function slotOf(addr: string): { slot: number; fn: number } {
  const [slot = "0", fn = "0"] = addr.slice(2).split(".");
  return { slot: parseInt(slot, 16), fn: Number(fn) };
}

/**
 * The machine's device rules (docs/q35.md): each board takes its own
 * devices; on q35 every function has a bus that exists and an address of
 * its own, a root port holds one device at 0x0.0, and pcie.0's 00:00.0 is
 * the host bridge's. virga-vmm checks the same; checking here names the
 * field before a VM is created.
 */
function checkBoard(
  config: { machine: "microvm" | "q35"; devices: Device[] },
  ctx: z.RefinementCtx,
): void {
  const at = (path: (string | number)[], message: string): void => {
    ctx.addIssue({ code: "custom", path, message });
  };
  if (config.machine === "microvm") {
    config.devices.forEach((device, i) => {
      if ("bus" in device) {
        at(
          ["devices", i, "driver"],
          `'${device.driver}' needs machine 'q35'; the microvm takes virtio-mmio devices (virtio-blk-device, virtio-net-device)`,
        );
      }
    });
    return;
  }
  const rootPorts = rootPortsOf(config);
  const buses = new Set<string>([ROOT_BUS]);
  const taken = new Map<string, string>();
  const place = (path: (string | number)[], bus: string, addr: string, by: string): void => {
    const key = `${bus}/${addr}`;
    const holder = taken.get(key);
    if (holder !== undefined) at(path, `${bus} ${addr} is taken by '${holder}'`);
    else taken.set(key, by);
  };
  const ports = new Map<number, string>();
  config.devices.forEach((device, i) => {
    if (!isRootPort(device)) return;
    if (buses.has(device.id)) at(["devices", i, "id"], `bus '${device.id}' is declared twice`);
    buses.add(device.id);
    const other = ports.get(device.port);
    if (other !== undefined) {
      at(["devices", i, "port"], `port ${device.port} is root port '${other}''s already`);
    }
    ports.set(device.port, device.id);
  });
  const portIds = rootPorts.map((p) => p.id).join(", ") || "none declared";
  config.devices.forEach((device, i) => {
    if (!("bus" in device)) {
      at(
        ["devices", i, "driver"],
        `'${device.driver}' is a microvm (virtio-mmio) device; the q35 machine takes ${MICROVM_DRIVERS[device.driver] ?? "PCI devices"}`,
      );
      return;
    }
    if (isRootPort(device) && device.bus !== ROOT_BUS) {
      at(["devices", i, "bus"], `a root port sits on ${ROOT_BUS}, not on '${device.bus}'`);
      return;
    }
    if (!buses.has(device.bus)) {
      at(
        ["devices", i, "bus"],
        `unknown bus '${device.bus}'; expected ${ROOT_BUS} or a root port (${portIds})`,
      );
      return;
    }
    if (device.bus !== ROOT_BUS && device.addr !== ROOT_PORT_SLOT) {
      at(["devices", i, "addr"], `a root port has one slot: addr ${ROOT_PORT_SLOT}`);
      return;
    }
    if (device.bus === ROOT_BUS && device.addr === ROOT_PORT_SLOT) {
      at(["devices", i, "addr"], "0x0.0 is the host bridge's");
      return;
    }
    place(["devices", i, "addr"], device.bus, device.addr, device.id);
  });
  // A guest looks at functions 1-7 of a slot only when function 0 is there.
  for (const key of taken.keys()) {
    const [bus = "", addr = ""] = key.split("/");
    const { slot, fn } = slotOf(addr);
    const first = `0x${slot.toString(16)}.0`;
    if (fn !== 0 && !taken.has(`${bus}/${first}`)) {
      at(
        ["devices"],
        `${bus} ${addr}: function 0 (${first}) is empty, and a guest looks no further`,
      );
    }
  }
}

export const vmConfigSchema = z
  .object({
    name: z.string().min(1).optional(),
    /** q35: the PCIe board (docs/q35.md). */
    machine: z.enum(["microvm", "q35"]),
    kernel: z.string().min(1),
    initrd: z.string().min(1).optional(),
    append: z.string(),
    bootEntry: z.enum(["linux64", "pvh"]),
    smp: smpSchema,
    memoryBytes: z.number().int().min(MIN_MEMORY_BYTES).max(MAX_MEMORY_BYTES).multipleOf(MIB),
    /** -mem-share: guest RAM another process can map (a memfd, or -mem-path's file mapped shared). */
    memShare: z.boolean().optional(),
    /** -mem-path: guest RAM in this file, or in a new unlinked file in this directory (hugetlbfs). */
    memPath: z.string().regex(/^\//, "must be an absolute path").optional(),
    drives: z.array(driveSchema),
    /** Configs written before NICs existed have none. */
    netdevs: z.array(netdevSchema).default([]),
    /** In command-line order: disks fill block slots, NICs NIC slots, in this order. */
    devices: z.array(deviceSchema),
    serial: serialSchema,
    qmp: qmpSchema.optional(),
    /** -D: undefined = no log; null = log to stderr; a string = log file. */
    logFile: z.string().min(1).nullable().optional(),
    daemonize: z.boolean(),
    pidfile: z.string().min(1).optional(),
    /** -S: start with vCPUs paused (QMP status "prelaunch") until `cont`. */
    startPaused: z.boolean(),
    /** -incoming: continue a snapshot (file:<dir>) or wait for a live migration (tcp:, unix:). */
    incoming: z
      .string()
      .regex(
        /^(file:\/|unix:.|tcp:)/,
        "must be file:<absolute path of a snapshot directory>, tcp:<host>:<port> or unix:<path>",
      )
      .optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    const driveIds = new Set<string>();
    for (const drive of config.drives) {
      if (driveIds.has(drive.id)) {
        ctx.addIssue({
          code: "custom",
          path: ["drives"],
          message: `duplicate drive id '${drive.id}'`,
        });
      }
      driveIds.add(drive.id);
    }
    const netdevIds = new Set<string>();
    for (const netdev of config.netdevs) {
      if (netdevIds.has(netdev.id)) {
        ctx.addIssue({
          code: "custom",
          path: ["netdevs"],
          message: `duplicate netdev id '${netdev.id}'`,
        });
      }
      netdevIds.add(netdev.id);
    }
    const issue = (message: string): void => {
      ctx.addIssue({ code: "custom", path: ["devices"], message });
    };
    const deviceIds = new Set<string>();
    const used = new Set<string>();
    for (const device of config.devices) {
      if (!("slot" in device) || device.slot === undefined) continue;
      const key = `${device.driver}:${device.slot}`;
      if (used.has(key)) issue(`slot ${device.slot} is given to two ${device.driver}s`);
      used.add(key);
    }
    const counts = { disks: 0, nics: 0, balloons: 0 };
    for (const device of config.devices) {
      if (deviceIds.has(device.id)) issue(`duplicate device id '${device.id}'`);
      deviceIds.add(device.id);
      if (device.driver === "virtio-blk-device" || device.driver === "virtio-blk-pci") {
        if (device.driver === "virtio-blk-device" && ++counts.disks > BLOCK_SLOTS) {
          issue(`at most ${BLOCK_SLOTS} virtio-blk devices`);
        }
        if (!driveIds.has(device.drive)) issue(`unknown drive '${device.drive}'`);
        if (used.has(`drive:${device.drive}`)) issue(`drive '${device.drive}' is used twice`);
        used.add(`drive:${device.drive}`);
      } else if (device.driver === "virtio-net-device" || device.driver === "virtio-net-pci") {
        if (device.driver === "virtio-net-device" && ++counts.nics > NET_SLOTS) {
          issue(`at most ${NET_SLOTS} virtio-net devices`);
        }
        if (!netdevIds.has(device.netdev)) issue(`unknown netdev '${device.netdev}'`);
        if (used.has(`netdev:${device.netdev}`)) issue(`netdev '${device.netdev}' is used twice`);
        used.add(`netdev:${device.netdev}`);
      } else if (device.driver === "vfio-pci") {
        // No backend: the host function is checked when the VM starts.
        if ((device.host === undefined) === (device.sysfsdev === undefined)) {
          issue("vfio-pci takes exactly one of host and sysfsdev");
        }
      } else if (
        (device.driver === "virtio-balloon-device" || device.driver === "virtio-balloon-pci") &&
        ++counts.balloons > 1
      ) {
        issue("at most one balloon");
      }
    }
    checkBoard(config, ctx);
    for (const netdev of config.netdevs) {
      if (!used.has(`netdev:${netdev.id}`)) {
        ctx.addIssue({
          code: "custom",
          path: ["netdevs"],
          message: `netdev '${netdev.id}' is not attached to any virtio-net-device`,
        });
      }
    }
    if (config.incoming?.startsWith("file:") === true) {
      const flag = config.memPath !== undefined ? "memPath" : config.memShare ? "memShare" : null;
      if (flag !== null) {
        ctx.addIssue({
          code: "custom",
          path: [flag],
          message:
            "a snapshot restores into anonymous guest RAM (incoming file:), not shared or file-backed RAM",
        });
      }
    }
    if (config.daemonize && config.serial.kind === "stdio") {
      ctx.addIssue({
        code: "custom",
        path: ["serial"],
        message: "-daemonize cannot use serial stdio",
      });
    }
  });
export type VmConfig = z.infer<typeof vmConfigSchema>;
