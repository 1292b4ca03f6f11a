// The commands that may be sent as raw QMP through virgad (`vm.qmp`) and the
// portal (its QMP console and HTTP gateway), with the least portal role each
// needs and a check of every host path or address in its arguments. An
// explicit list: a command the VMM learns later is refused here until
// someone decides who may send it and what its arguments may name. virgad
// applies the argument checks (it owns the image directories); the portal
// applies the roles before forwarding.
import { INTERFACE_NAME_RULE, isInterfaceName } from "../config/vm-config";
import type { ImageDirs } from "./confine";
import { badRequest, forbidden } from "./errors";

export type RawQmpRole = "viewer" | "operator";

export type RawQmpArgs = Record<string, unknown>;

/** Checks a command's arguments; returns them as they must reach the VM (paths resolved). */
type ArgumentCheck = (args: RawQmpArgs, images: ImageDirs) => Promise<RawQmpArgs> | RawQmpArgs;

export interface RawQmpRule {
  role: RawQmpRole;
  check?: ArgumentCheck;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Refuses every key but `allowed`: any other key could name a file in QEMU's schema. */
function onlyKeys(
  field: string,
  value: Record<string, unknown>,
  allowed: readonly string[],
  refusedWhy: Record<string, string> = {},
): void {
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    const why = Object.hasOwn(refusedWhy, key)
      ? refusedWhy[key]
      : `it takes only ${allowed.join(", ")}`;
    throw forbidden(`${field}.${key}: not allowed through the gateway (${why})`);
  }
}

// ---- blockdev-add: the file must be {driver: "file", filename} in an image directory

const BLOCKDEV_KEYS = ["node-name", "driver", "file", "read-only", "cache"] as const;

async function checkBlockdevAdd(args: RawQmpArgs, images: ImageDirs): Promise<RawQmpArgs> {
  onlyKeys("arguments", args, BLOCKDEV_KEYS, {
    filename: 'give the file as file: {"driver": "file", "filename": ...}',
  });
  const file = args.file;
  if (file === undefined) return args; // the VM names the missing argument
  if (typeof file === "string") {
    throw forbidden(
      `arguments.file: a reference to another node ('${file}') is not allowed through the gateway; give {"driver": "file", "filename": ...}`,
    );
  }
  if (!isRecord(file)) {
    throw badRequest(`arguments.file: expected {"driver": "file", "filename": ...}`);
  }
  onlyKeys("arguments.file", file, ["driver", "filename"]);
  if (file.driver !== "file") {
    throw forbidden(
      typeof file.driver === "string"
        ? `arguments.file.driver: '${file.driver}' is not allowed through the gateway (only 'file')`
        : `arguments.file.driver: expected 'file'`,
    );
  }
  if (typeof file.filename !== "string") {
    throw badRequest(
      "arguments.file.filename: expected a string (an absolute path in an image directory)",
    );
  }
  const real = await images.check("arguments.file.filename", file.filename, "disk");
  return { ...args, file: { ...file, filename: real } };
}

// ---- migrate: file:/unix: into an image directory, tcp: to a valid address

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6 = /^\[[0-9A-Fa-f:.]{2,45}\]$/;

function checkTcpTarget(uri: string): void {
  const rest = uri.slice("tcp:".length);
  const colon = rest.lastIndexOf(":");
  const host = colon < 0 ? "" : rest.slice(0, colon);
  const port = colon < 0 ? "" : rest.slice(colon + 1);
  const hostOk = HOSTNAME.test(host) || (IPV6.test(host) && host.slice(1, -1).includes(":"));
  const portNumber = /^\d{1,5}$/.test(port) ? Number(port) : 0;
  if (!hostOk || portNumber < 1 || portNumber > 65535) {
    throw badRequest(
      `arguments.uri: '${uri}' is not tcp:<host>:<port> (a host name, IPv4 address or [IPv6] address, and a port 1-65535)`,
    );
  }
}

const REFUSED_SCHEMES: Record<string, string> = {
  "exec:": "exec: runs a host command",
  "fd:": "fd: needs a descriptor passed with getfd, which HTTP cannot carry",
};

async function checkMigrate(args: RawQmpArgs, images: ImageDirs): Promise<RawQmpArgs> {
  onlyKeys("arguments", args, ["uri"], { channels: "give the target as uri" });
  const uri = args.uri;
  if (uri === undefined) return args; // the VM names the missing argument
  if (typeof uri !== "string") throw badRequest("arguments.uri: expected a string");
  for (const [scheme, why] of Object.entries(REFUSED_SCHEMES)) {
    if (uri.startsWith(scheme)) {
      throw forbidden(`arguments.uri: '${scheme}' is not allowed through the gateway (${why})`);
    }
  }
  if (uri.startsWith("tcp:")) {
    checkTcpTarget(uri);
    return args;
  }
  for (const scheme of ["file:", "unix:"]) {
    if (!uri.startsWith(scheme)) continue;
    return {
      ...args,
      uri: scheme + (await images.checkTarget("arguments.uri", uri.slice(scheme.length))),
    };
  }
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(uri)?.[0] ?? uri;
  throw forbidden(
    `arguments.uri: '${scheme}' is not allowed through the gateway (file:, unix: or tcp:)`,
  );
}

// ---- netdev_add: a tap by a valid interface name, never by descriptor

/** Linux's rule for interface names (dev_valid_name): shorter than IFNAMSIZ (16). */
function checkNetdevAdd(args: RawQmpArgs): RawQmpArgs {
  onlyKeys("arguments", args, ["id", "type", "ifname"], {
    fd: "HTTP cannot pass a descriptor; give ifname",
    script: "it runs a host program",
    downscript: "it runs a host program",
    helper: "it runs a host program",
  });
  const ifname = args.ifname;
  if (ifname !== undefined && (typeof ifname !== "string" || !isInterfaceName(ifname))) {
    throw badRequest(
      `arguments.ifname: ${JSON.stringify(ifname)} is not an interface name (${INTERFACE_NAME_RULE})`,
    );
  }
  return args;
}

// ---- the table

const VIEWER_QUERIES = [
  "query-status",
  "query-cpus",
  "query-cpus-fast",
  "query-hotpluggable-cpus",
  "query-stats",
  "query-stats-schemas",
  "query-version",
  "query-commands",
  "query-events",
  "query-target",
  "query-kvm",
  "query-machines",
  "query-chardev",
  "query-balloon",
  "virga-query-devices",
  "virga-query-balloon",
  "query-migrate",
  "query-migrate-parameters",
] as const;

const OPERATOR_COMMANDS = [
  "stop",
  "cont",
  "system_reset",
  "system_powerdown",
  "quit",
  "blockdev-del",
  "netdev_del",
  "device_add",
  "device_del",
  "balloon",
  "migrate_cancel",
  "migrate-set-parameters",
] as const;

export const RAW_QMP_COMMANDS: ReadonlyMap<string, RawQmpRule> = new Map<string, RawQmpRule>([
  ...VIEWER_QUERIES.map((name): [string, RawQmpRule] => [name, { role: "viewer" }]),
  ...OPERATOR_COMMANDS.map((name): [string, RawQmpRule] => [name, { role: "operator" }]),
  ["blockdev-add", { role: "operator", check: checkBlockdevAdd }],
  ["migrate", { role: "operator", check: checkMigrate }],
  ["netdev_add", { role: "operator", check: checkNetdevAdd }],
]);

/** Commands the VMM has that can never work through an HTTP gateway, with the reason. */
const REFUSED_COMMANDS: Record<string, string> = {
  getfd: "it takes a descriptor passed on the QMP socket, which HTTP cannot carry",
  closefd: "descriptors cannot be passed through it, so there is none to close",
};

export type RawQmpAccess = { allowed: true; rule: RawQmpRule } | { allowed: false; reason: string };

/** Whether a command may be sent raw at all; the reason names it when not. */
export function rawQmpAccess(execute: string): RawQmpAccess {
  const rule = RAW_QMP_COMMANDS.get(execute);
  if (rule !== undefined) return { allowed: true, rule };
  const why = Object.hasOwn(REFUSED_COMMANDS, execute) ? `: ${REFUSED_COMMANDS[execute]}` : "";
  return {
    allowed: false,
    reason: `execute: '${execute}' is not allowed through the gateway${why}`,
  };
}

/**
 * Checks a raw command and its arguments for virgad; returns the arguments
 * as they must reach the VM, or throws a DaemonError naming the field.
 */
export async function checkRawQmp(
  execute: string,
  args: unknown,
  images: ImageDirs,
): Promise<RawQmpArgs | undefined> {
  const access = rawQmpAccess(execute);
  if (!access.allowed) throw forbidden(access.reason);
  if (args === undefined) return undefined;
  if (!isRecord(args)) throw badRequest("arguments: expected an object");
  const check = access.rule.check;
  return check === undefined ? args : check(args, images);
}
