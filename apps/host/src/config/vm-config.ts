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

const macField = z
  .string()
  .regex(MAC_PATTERN, "must be a unicast MAC address like 52:54:00:12:34:56")
  .optional();

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

/** Where a q35 PCI function sits: its bus and addr=<slot>.<function>, as virga-vmm prints it. */
const pciPlace = {
  bus: z.string().min(1),
  addr: z.string().regex(/^0x[0-9a-f]{1,2}\.[0-7]$/, "must be <slot>.<function> like 0x3.0"),
};

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

/** A host function passed through (docs/q35.md, "VFIO"): virga-vmm prints exactly one of host and sysfsdev. */
export const pciVfioDeviceSchema = z
  .object({
    driver: z.literal("vfio-pci"),
    id: z.string().min(1),
    host: z
      .string()
      .regex(
        /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/,
        "must be DDDD:BB:SS.F like 0000:00:03.0",
      )
      .optional(),
    sysfsdev: z.string().startsWith("/").optional(),
    ...pciPlace,
  })
  .strict();

export const deviceSchema = z.discriminatedUnion("driver", [
  blockDeviceSchema,
  netDeviceSchema,
  balloonDeviceSchema,
  pciBlockDeviceSchema,
  pciNetDeviceSchema,
  pciBalloonDeviceSchema,
  pciVfioDeviceSchema,
]);
export type Device = z.infer<typeof deviceSchema>;

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

export const vmConfigSchema = z
  .object({
    name: z.string().min(1).optional(),
    /** q35: the PCIe board (docs/q35.md); virgad serves microvm VMs only, so far. */
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
      } else if (++counts.balloons > 1) {
        issue("at most one balloon");
      }
    }
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
