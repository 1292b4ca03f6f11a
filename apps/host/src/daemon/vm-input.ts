// From what a client sends to a VmConfig virgad can run. The config is the
// same zod schema virga-vmm's flags parse into; virgad fills in defaults for
// what a client may leave out and owns the fields that wire the VM to it
// (serial, qmp, logFile, daemonize, pidfile): whatever a client puts there
// is replaced, and the stored config shows the values used. Files named by
// the config are confined to the image directories (confine.ts).
import { z } from "zod";
import { vmConfigSchema, type VmConfig } from "../config/vm-config";
import type { ImageDirs } from "./confine";
import { badRequest } from "./errors";
import type { VmPaths } from "./run-dir";

/** The fields virgad sets itself. */
export type DaemonOwnedField = "serial" | "qmp" | "logFile" | "daemonize" | "pidfile";
/** Fields with defaults: machine "microvm", append "", bootEntry "linux64", no drives/devices, startPaused false. */
type Defaulted =
  "machine" | "append" | "bootEntry" | "drives" | "netdevs" | "devices" | "startPaused";

export type VmConfigInput = Omit<VmConfig, DaemonOwnedField | Defaulted> &
  Partial<Pick<VmConfig, DaemonOwnedField | Defaulted>>;

/** Describes zod issues as "<prefix>.<path>: <message>", one per issue. */
export function describeIssues(error: z.ZodError, prefix?: string): string {
  return error.issues
    .map((issue) => {
      const path = [...(prefix === undefined ? [] : [prefix]), ...issue.path.map(String)];
      return `${path.length === 0 ? "input" : path.join(".")}: ${issue.message}`;
    })
    .join("; ");
}

/** The daemon-owned fields for a VM directory. */
export function ownedFields(paths: VmPaths): Pick<VmConfig, DaemonOwnedField> {
  return {
    serial: { kind: "socket", path: paths.console },
    // 0 = unlimited: this one connection carries every client's commands.
    qmp: { kind: "unix", path: paths.qmp, rateLimit: 0 },
    logFile: paths.log,
    daemonize: false,
    pidfile: undefined,
  };
}

/** Validates a client's config (BAD_REQUEST naming the field) and fills in defaults and owned fields. */
export function normaliseConfig(input: unknown, name: string, paths: VmPaths): VmConfig {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw badRequest("config: expected an object");
  }
  if ("incoming" in input && input.incoming !== undefined) {
    // A snapshot to restore is chosen by vm.clone from virgad's own templates, never by path.
    throw badRequest("config.incoming: not accepted here; clone a template with vm.clone instead");
  }
  if ("memPath" in input && input.memPath !== undefined) {
    // A file virga-vmm would create, size and fill with guest RAM: no
    // client names one, as no client names a path outside the image directories.
    throw badRequest(
      "config.memPath: not accepted by virgad; guest RAM is anonymous, or shared with memShare",
    );
  }
  const candidate: Record<string, unknown> = {
    machine: "microvm",
    append: "",
    bootEntry: "linux64",
    drives: [],
    devices: [],
    startPaused: false,
    ...input,
    name,
    ...ownedFields(paths),
  };
  delete candidate.pidfile;
  const parsed = vmConfigSchema.safeParse(candidate);
  if (!parsed.success) throw badRequest(describeIssues(parsed.error, "config"));
  return parsed.data;
}

/** Confines every file of a config; returns the config with resolved paths. */
export async function confineConfig(config: VmConfig, images: ImageDirs): Promise<VmConfig> {
  const kernel = await images.check("config.kernel", config.kernel, "kernel");
  const initrd =
    config.initrd === undefined
      ? undefined
      : await images.check("config.initrd", config.initrd, "initrd");
  const drives = [];
  for (const [index, drive] of config.drives.entries()) {
    drives.push({
      ...drive,
      file: await images.check(`config.drives.${index}.file`, drive.file, "disk"),
    });
  }
  const confined: VmConfig = { ...config, kernel, drives };
  if (initrd === undefined) delete confined.initrd;
  else confined.initrd = initrd;
  return confined;
}
