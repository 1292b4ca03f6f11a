// vm.clone: VMs restored from a snapshot template (templates.ts), created
// and started in parallel. Each clone is an ordinary VM directory whose
// config.json is the template's machine with the clone's own wiring: its
// own copies of the template's disks (in <vm>/disks/, reflinked where the
// file system can), its own taps on the template's bridges (or the one
// given), its own QMP socket, console and log, and `incoming` naming the
// template, so that its first start restores the snapshot instead of
// booting (vm.ts drops `incoming` once it ran). Each NIC gets the clone's
// own MAC on the network (derived from its id, or overrides.mac): the guest
// keeps the template's, which it read at boot, and virga-vmm translates
// (docs/devices.md, "A clone's own MAC"); config.json records it, so a
// later cold boot gives the guest that MAC too. The machine itself (vCPUs,
// memory, which slots hold which disks and NICs) must stay the template's:
// virga-vmm refuses anything else, and so does this file, naming the
// override.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { VmConfig } from "../config/vm-config";
import type { Daemon } from "./daemon";
import { configSlots, derivedMac, wireNics } from "./devices";
import { copyDisk } from "./disk-copy";
import { badRequest, messageOf } from "./errors";
import { writeJson } from "./json-file";
import { MAX_CLONES } from "./routers/templates.schema";
import { vmDisksDir, type VmPaths } from "./run-dir";
import { checkBridge, type OwnedTap } from "./taps";
import type { TemplateInfo } from "./templates";
import type { VmState } from "./vm";
import { ownedFields } from "./vm-input";

/** What a clone may have of its own; the rest of a config is the template's machine. */
export interface CloneOverrides {
  /** Display name; with count > 1 each clone gets "<name>-<n>" (n as in its id). */
  name?: string | undefined;
  /** Every NIC's tap goes on this bridge instead of the template's. */
  bridge?: string | undefined;
  /** Leave the clones paused (prelaunch) after the restore. */
  paused?: boolean | undefined;
  /** The kernel command line for the clone's later cold boots (a restore keeps the guest's). */
  append?: string | undefined;
  /** The clone's MAC on the network (one clone of a template with one NIC); default: derived from its id. */
  mac?: string | undefined;
  /** Fixed by the template: accepted only when equal to it. */
  machine?: unknown;
  kernel?: unknown;
  initrd?: unknown;
  bootEntry?: unknown;
  smp?: unknown;
  memoryBytes?: unknown;
  drives?: unknown;
  netdevs?: unknown;
  devices?: unknown;
}

export interface CloneInput {
  template: string;
  count: number;
  /** Clone ids are "<namePrefix>-<n>", n counting from 1 past ids in use; default: the template's name. */
  namePrefix?: string | undefined;
  overrides?: CloneOverrides | undefined;
}

export interface CloneResult {
  id: string;
  name: string;
  /** null when the VM could not even be created. */
  state: VmState | null;
  pid: number | null;
  /** Its NICs' MACs on the network, in slot order. */
  macs: string[];
  /** Why this clone failed; null when it runs (or waits paused). */
  error: string | null;
}

export interface CloneReport {
  template: string;
  requested: number;
  started: number;
  failed: number;
  /** From the request to the last clone's answer. */
  elapsedMs: number;
  clones: CloneResult[];
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Refuses an override that would change the machine, naming it and the template's value. */
function checkMachineOverrides(template: TemplateInfo, overrides: CloneOverrides): void {
  const fixed: [keyof CloneOverrides & keyof VmConfig, unknown, string][] = [
    ["machine", template.config.machine, "machine type"],
    ["kernel", template.config.kernel, "kernel"],
    ["initrd", template.config.initrd, "initrd"],
    ["bootEntry", template.config.bootEntry, "boot entry"],
    ["smp", template.config.smp, "vCPU topology"],
    ["memoryBytes", template.config.memoryBytes, "memory size"],
    ["drives", template.config.drives, "disks (each clone gets its own copies of them)"],
    ["netdevs", template.config.netdevs, "NIC backends (each clone gets its own taps)"],
    ["devices", template.config.devices, "devices in their slots"],
  ];
  for (const [field, value, what] of fixed) {
    if (overrides[field] === undefined || same(overrides[field], value)) continue;
    throw badRequest(
      `overrides.${field}: a clone has its template's ${what} (${JSON.stringify(value)}); ${JSON.stringify(overrides[field])} would change the machine`,
    );
  }
}

/** overrides.mac names one NIC's MAC: one clone, a template with one NIC. */
function checkMacOverride(template: TemplateInfo, count: number, mac: string | undefined): void {
  if (mac === undefined) return;
  const nics = configSlots(template.config).nics.size;
  if (nics !== 1) {
    throw badRequest(
      `overrides.mac: template '${template.name}' has ${nics} NICs; a MAC can be given only for a template with one`,
    );
  }
  if (count !== 1) {
    throw badRequest(
      `overrides.mac: names one clone's MAC, but count is ${count}; leave it out and each clone gets its own, derived from its id`,
    );
  }
}

/** The bridge for each of the template's NIC slots. */
function bridgesFor(template: TemplateInfo, bridge: string | undefined): Map<number, string> {
  if (bridge !== undefined) checkBridge("overrides.bridge", bridge);
  const bridges = new Map<number, string>();
  for (const nic of template.nics) {
    const chosen = bridge ?? nic.bridge;
    if (chosen === null) {
      throw badRequest(
        `overrides.bridge: NIC slot ${nic.slot} of template '${template.name}' is on tap '${nic.tap ?? "?"}', which virgad did not make and a clone cannot share; give a bridge for the clones' taps`,
      );
    }
    if (bridge === undefined)
      checkBridge(`template '${template.name}' NIC slot ${nic.slot}: bridge`, chosen);
    bridges.set(nic.slot, chosen);
  }
  return bridges;
}

/** `count` free ids "<prefix>-<n>", n from 1, skipping ids in use. */
function cloneIds(daemon: Daemon, prefix: string, count: number): string[] {
  const ids: string[] = [];
  for (let n = 1; ids.length < count; n++) {
    const id = `${prefix}-${n}`;
    if (!daemon.idTaken(id)) ids.push(id);
  }
  // The longest id decides whether the socket paths fit.
  daemon.checkNewId(ids[ids.length - 1] ?? `${prefix}-1`, "namePrefix");
  return ids;
}

/** The template's config rewired for one clone directory: the same devices, each NIC with the clone's MAC. */
function cloneConfig(
  template: TemplateInfo,
  id: string,
  paths: VmPaths,
  name: string,
  bridges: Map<number, string>,
  overrides: CloneOverrides,
): { config: VmConfig; taps: OwnedTap[] } {
  // A derived MAC is stable for the clone (its id), as a booted VM's is for its name.
  const { netdevs, devices, taps } = wireNics(template.config, paths.dir, (slot) => ({
    bridge: bridges.get(slot),
    mac: overrides.mac?.toLowerCase() ?? derivedMac(id, slot),
  }));
  const config: VmConfig = {
    ...template.config,
    ...ownedFields(paths),
    name,
    drives: template.config.drives.map((drive) => ({
      ...drive,
      file: path.join(vmDisksDir(paths), path.basename(drive.file)),
    })),
    netdevs,
    devices,
    startPaused: false,
    incoming: `file:${template.dir}`,
  };
  delete config.pidfile;
  if (overrides.append !== undefined) config.append = overrides.append;
  return { config, taps };
}

/** Creates one clone's directory (its disk copies included) and starts it. */
async function cloneOne(
  daemon: Daemon,
  template: TemplateInfo,
  id: string,
  name: string,
  bridges: Map<number, string>,
  overrides: CloneOverrides,
): Promise<CloneResult> {
  let macs: string[] = [];
  try {
    await daemon.register(id, { name, clonedFrom: template.name }, async (staged, final) => {
      const { config, taps } = cloneConfig(template, id, final, name, bridges, overrides);
      macs = [...configSlots(config).nics]
        .sort(([a], [b]) => a - b)
        .flatMap(([, nic]) => nic.device.mac ?? []);
      await mkdir(vmDisksDir(staged), { mode: 0o700 });
      for (const drive of template.config.drives) {
        await copyDisk(drive.file, path.join(vmDisksDir(staged), path.basename(drive.file)));
      }
      await writeJson(staged.config, config);
      // Recorded before the start, which makes them (vm.ts) and deletes them with the VM.
      return taps.length === 0 ? {} : { taps };
    });
  } catch (error) {
    return { id, name, state: null, pid: null, macs, error: messageOf(error) };
  }
  const vm = daemon.vm(id);
  try {
    const summary = await vm.start(overrides.paused ?? false);
    return { id, name, state: summary.state, pid: summary.pid, macs, error: null };
  } catch (error) {
    const summary = vm.summary();
    return { id, name, state: summary.state, pid: summary.pid, macs, error: messageOf(error) };
  }
}

/**
 * Creates `count` clones of a template and starts them all at once; each
 * clone's result is reported, a failed one with its reason (the VM stays,
 * `crashed`, with its log, until deleted).
 */
export async function cloneTemplate(daemon: Daemon, input: CloneInput): Promise<CloneReport> {
  const began = Date.now();
  const template = daemon.templates.get(input.template);
  if (!Number.isInteger(input.count) || input.count < 1 || input.count > MAX_CLONES) {
    throw badRequest(`count: ${input.count} must be 1..${MAX_CLONES}`);
  }
  const overrides = input.overrides ?? {};
  checkMachineOverrides(template, overrides);
  checkMacOverride(template, input.count, overrides.mac);
  const bridges = bridgesFor(template, overrides.bridge);
  const prefix = input.namePrefix ?? template.name;
  const ids = cloneIds(daemon, prefix, input.count);
  const clones = await daemon.templates.cloning(template.name, ids.length, () =>
    Promise.all(
      ids.map((id) => {
        const n = id.slice(prefix.length + 1);
        const name =
          overrides.name === undefined
            ? id
            : input.count === 1
              ? overrides.name
              : `${overrides.name}-${n}`;
        return cloneOne(daemon, template, id, name, bridges, overrides);
      }),
    ),
  );
  const started = clones.filter((clone) => clone.error === null).length;
  await daemon.templates.recordClones(template.name, started).catch((error: unknown) => {
    daemon.logLine(`template '${template.name}': counting clones: ${messageOf(error)}`);
  });
  return {
    template: template.name,
    requested: input.count,
    started,
    failed: clones.length - started,
    elapsedMs: Date.now() - began,
    clones,
  };
}
