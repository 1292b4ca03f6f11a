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

export const blockDeviceSchema = z
  .object({
    driver: z.literal("virtio-blk-device"),
    id: z.string().min(1),
    /** The -drive id this device's backend comes from. */
    drive: z.string().min(1),
  })
  .strict();
export type BlockDevice = z.infer<typeof blockDeviceSchema>;

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
    machine: z.literal("microvm"),
    kernel: z.string().min(1),
    initrd: z.string().min(1).optional(),
    append: z.string(),
    bootEntry: z.enum(["linux64", "pvh"]),
    smp: smpSchema,
    memoryBytes: z.number().int().min(MIN_MEMORY_BYTES).max(MAX_MEMORY_BYTES).multipleOf(MIB),
    drives: z.array(driveSchema),
    devices: z.array(blockDeviceSchema).max(BLOCK_SLOTS),
    serial: serialSchema,
    qmp: qmpSchema.optional(),
    /** -D: undefined = no log; null = log to stderr; a string = log file. */
    logFile: z.string().min(1).nullable().optional(),
    daemonize: z.boolean(),
    pidfile: z.string().min(1).optional(),
    /** -S: start with vCPUs paused (QMP status "prelaunch") until `cont`. */
    startPaused: z.boolean(),
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
    const deviceIds = new Set<string>();
    const usedDrives = new Set<string>();
    for (const device of config.devices) {
      if (deviceIds.has(device.id)) {
        ctx.addIssue({
          code: "custom",
          path: ["devices"],
          message: `duplicate device id '${device.id}'`,
        });
      }
      deviceIds.add(device.id);
      if (!driveIds.has(device.drive)) {
        ctx.addIssue({
          code: "custom",
          path: ["devices"],
          message: `unknown drive '${device.drive}'`,
        });
      }
      if (usedDrives.has(device.drive)) {
        ctx.addIssue({
          code: "custom",
          path: ["devices"],
          message: `drive '${device.drive}' is used twice`,
        });
      }
      usedDrives.add(device.drive);
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
