// argv → VmConfig. Each flag module parses its own argument; this file walks
// argv, applies defaults, checks what involves several flags (slots, drive
// references, conflicting pairs) and runs the result through the VmConfig
// schema. Every mistake is a UsageError naming one flag.
import { BLOCK_SLOTS, MIB, vmConfigSchema, type VmConfig } from "../config/vm-config";
import * as device from "./flags/device";
import * as drive from "./flags/drive";
import type { FlagModule } from "./flag";
import * as F from "./flags/index";
import { FLAGS, FLAGS_BY_NAME } from "./flags/index";
import * as initrdFlag from "./flags/initrd";
import * as kernelFlag from "./flags/kernel";
import * as serial from "./flags/serial";
import { UsageError } from "./usage-error";

export const DEFAULT_MEMORY_BYTES = 256 * MIB;

/** What argv asked for besides a VM. */
export type Invocation =
  { action: "run"; config: VmConfig } | { action: "help" } | { action: "version" };

interface Collected {
  values: Map<string, unknown[]>;
}

function collect(argv: readonly string[]): Collected | "help" | "version" {
  const values = new Map<string, unknown[]>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? "";
    if (!token.startsWith("-") || token === "-") {
      throw new UsageError(
        token,
        `unexpected argument '${token}'; expected a flag such as -kernel <path>`,
      );
    }
    const name = token.startsWith("--") ? token.slice(1) : token;
    if (name === "-help" || name === "-h") return "help";
    if (name === "-version") return "version";
    const module = FLAGS_BY_NAME.get(name);
    if (module === undefined) {
      throw new UsageError(
        name,
        `unknown flag; expected one of ${FLAGS.map((f) => f.flag).join(" ")}`,
      );
    }
    let argument: string | null = null;
    if (module.arity === "value") {
      const next = argv[i + 1];
      if (next === undefined) throw UsageError.expected(name, module.syntax, "", "missing value");
      argument = next;
      i++;
    } else if (module.arity === "optional") {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("-")) {
        argument = next;
        i++;
      }
    }
    const list = values.get(name) ?? [];
    if (list.length > 0 && !module.repeatable) {
      throw new UsageError(name, "given more than once; expected it at most once");
    }
    list.push((module.parse as (value: string | null) => unknown)(argument));
    values.set(name, list);
  }
  return { values };
}

/** The value a single-use flag parsed to, typed by its module. */
function one<T>(collected: Collected, module: FlagModule<T>): T | undefined {
  return collected.values.get(module.flag)?.[0] as T | undefined;
}

/** Every value a repeatable flag parsed to, in command-line order. */
function all<T>(collected: Collected, module: FlagModule<T>): T[] {
  return (collected.values.get(module.flag) ?? []) as T[];
}

/** Parses argv (without node and the script) into an invocation; throws UsageError. */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const collected = collect(argv);
  if (collected === "help") return { action: "help" };
  if (collected === "version") return { action: "version" };

  const kernelPath = one(collected, F.kernel);
  if (kernelPath === undefined) {
    throw UsageError.expected("-kernel", kernelFlag.kernel.syntax, "", "required");
  }
  const daemonize = one(collected, F.daemonize) === true;
  const drives = all(collected, F.driveFlag);
  const devices = all(collected, F.deviceFlag);
  const explicitSerial = one(collected, F.serialFlag);

  checkDevices(drives, devices);
  if (daemonize && explicitSerial?.kind === "stdio") {
    throw UsageError.expected(
      "-daemonize",
      "-serial pty|none|file,path=<path>|socket,path=<path>,server,nowait",
      "-serial stdio",
      "cannot be used with -serial stdio",
    );
  }
  const logFile = one(collected, F.logFile);
  if (daemonize && logFile === null) {
    throw UsageError.expected(
      "-D",
      "-D <log file> with -daemonize",
      "-D",
      "a daemon has no stderr",
    );
  }

  const config: VmConfig = {
    machine: "microvm",
    kernel: kernelPath,
    append: one(collected, F.append) ?? "",
    bootEntry: one(collected, F.bootEntry) ?? "linux64",
    smp: one(collected, F.smp) ?? {
      cpus: 1,
      maxCpus: 1,
      sockets: 1,
      cores: 1,
      threads: 1,
    },
    memoryBytes: one(collected, F.memory) ?? DEFAULT_MEMORY_BYTES,
    drives,
    devices,
    serial: explicitSerial ?? (daemonize ? { kind: "none" } : { kind: "stdio" }),
    daemonize,
    startPaused: one(collected, F.startPaused) === true,
  };
  const name = one(collected, F.nameFlag);
  if (name !== undefined) config.name = name;
  const initrdPath = one(collected, F.initrd);
  if (initrdPath !== undefined) config.initrd = initrdPath;
  const qmp = one(collected, F.qmpFlag);
  if (qmp !== undefined) config.qmp = qmp;
  if (logFile !== undefined) config.logFile = logFile;
  const pidfile = one(collected, F.pidfile);
  if (pidfile !== undefined) config.pidfile = pidfile;

  // The flag modules already validated their parts; this catches anything a
  // combination could still break, so a VmConfig is valid by construction.
  const result = vmConfigSchema.safeParse(config);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new UsageError("-" + String(issue?.path[0] ?? "config"), issue?.message ?? "invalid");
  }
  return { action: "run", config: result.data };
}

function checkDevices(drives: VmConfig["drives"], devices: VmConfig["devices"]): void {
  const byId = new Map<string, VmConfig["drives"][number]>();
  for (const d of drives) {
    if (byId.has(d.id)) {
      throw UsageError.expected(
        drive.flag,
        drive.syntax,
        drive.format(d),
        `duplicate id '${d.id}'`,
      );
    }
    byId.set(d.id, d);
  }
  const extra = devices[BLOCK_SLOTS];
  if (extra !== undefined) {
    throw UsageError.expected(
      device.flag,
      device.syntax,
      device.format(extra),
      `at most ${BLOCK_SLOTS} virtio-blk devices (microvm block slots)`,
    );
  }
  const used = new Set<string>();
  const ids = new Set<string>();
  for (const dev of devices) {
    const got = device.format(dev);
    if (!byId.has(dev.drive)) {
      throw UsageError.expected(device.flag, device.syntax, got, `unknown drive '${dev.drive}'`);
    }
    if (used.has(dev.drive)) {
      throw UsageError.expected(
        device.flag,
        device.syntax,
        got,
        `drive '${dev.drive}' already used`,
      );
    }
    if (ids.has(dev.id)) {
      throw UsageError.expected(device.flag, device.syntax, got, `duplicate id '${dev.id}'`);
    }
    used.add(dev.drive);
    ids.add(dev.id);
  }
  for (const d of drives) {
    if (!used.has(d.id)) {
      throw UsageError.expected(
        drive.flag,
        drive.syntax,
        drive.format(d),
        `drive '${d.id}' is not attached by any -device virtio-blk-device,drive=${d.id}`,
      );
    }
  }
}

/** The checks that read the file system: kernel, initrd and drive files must exist. */
export function validateFiles(config: VmConfig): void {
  kernelFlag.validate(config.kernel);
  if (config.initrd !== undefined) initrdFlag.validate(config.initrd);
  for (const d of config.drives) drive.validate(d);
}

/** For -help. */
export function usage(): string {
  const lines = ["usage: virga-vmm -kernel <path> [flags]", ""];
  for (const f of FLAGS) {
    const form = f.arity === "none" ? f.flag : `${f.flag} ${f.syntax}`;
    lines.push(`  ${form}`, `      ${f.help}`);
  }
  lines.push(
    "",
    `serial defaults to ${serial.format({ kind: "stdio" })}; exit codes: 0 guest/QMP/signal shutdown, 1 VMM error, 2 usage error`,
  );
  return lines.join("\n");
}
