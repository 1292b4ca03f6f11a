// Snapshot templates (docs/virgad.md, "Templates"): a VM's memory and
// device state as virga-vmm writes them (QMP `migrate file:`), copies of its
// disks taken in the same pause, and the VmConfig that restores them, under
// <run>/templates/<name>/:
//   state, memory   virga-vmm's snapshot (clones map memory copy-on-write)
//   disks/          the VM's disks as they were at the snapshot
//   config.json     the VM's config, its drives pointing into disks/
//   meta.json       source VM, time, sizes, the NICs' MACs and bridges, clones made
// A template is built in a staging directory and renamed into place, so a
// failure leaves nothing; it is never changed afterwards, except for the
// count of clones made.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { vmConfigSchema, type VmConfig } from "../config/vm-config";
import { configSlots, listDevices, type VmDevices } from "./devices";
import { copyDisk } from "./disk-copy";
import { DaemonError, badRequest, messageOf, wrongState } from "./errors";
import { readJson, writeJson } from "./json-file";
import { TEMPLATE_NAME, TEMPLATE_NAME_RULE } from "./routers/templates.schema";
import { privateDir } from "./run-dir";
import type { ManagedVm, VmState } from "./vm";

/** Writing a large guest's memory may take a while; the VM is paused meanwhile. */
const MIGRATE_TIMEOUT_MS = 10 * 60 * 1000;
const SNAPSHOT_STATES: readonly VmState[] = ["running", "paused"];

export interface TemplateDisk {
  slot: number;
  /** The copy inside the template (clones copy it again). */
  file: string;
  /** Where the source VM had it. */
  sourceFile: string;
  sizeBytes: number;
  readOnly: boolean;
}

export interface TemplateNic {
  slot: number;
  /** The source's MAC on the network (each clone gets its own, vm.clone). */
  mac: string;
  /** The MAC the source's guest read at boot, when it differs from `mac` (a template of a clone). */
  guestMac?: string;
  /** The bridge of the tap virgad made for it; null when the VM used a tap of its own. */
  bridge: string | null;
  tap: string | null;
}

export interface TemplateSizes {
  stateBytes: number;
  /** The memory file's length (guest RAM plus a header) and what it takes on disk (it is sparse). */
  memoryFileBytes: number;
  memoryAllocatedBytes: number;
  disksBytes: number;
  disksAllocatedBytes: number;
  /** Everything the template takes on disk. */
  allocatedBytes: number;
}

interface TemplateMeta {
  name: string;
  source: { id: string; name: string };
  createdAt: string;
  /** How long the source VM was paused for the snapshot and the disk copies. */
  pausedMs: number;
  memoryBytes: number;
  vcpus: number;
  sizes: TemplateSizes;
  disks: TemplateDisk[];
  nics: TemplateNic[];
  clonesMade: number;
}

export interface TemplateInfo extends TemplateMeta {
  dir: string;
  /** Clones being created or started from it right now. */
  clonesStarting: number;
  config: VmConfig;
}

export function checkTemplateName(name: string, field = "template"): void {
  if (!TEMPLATE_NAME.test(name)) {
    throw badRequest(
      `${field}: '${name}' must match ${String(TEMPLATE_NAME)} (${TEMPLATE_NAME_RULE})`,
    );
  }
}

export function templateNotFound(name: string, field = "template"): DaemonError {
  return new DaemonError("NOT_FOUND", `${field}: no template named '${name}'`);
}

/**
 * Each disk slot and NIC slot the config fills must be what the running VM
 * has, and the reverse: the config is what rebuilds the machine elsewhere
 * (`who` says where: a clone, a migration's destination).
 */
export function checkConfigMatches(
  vm: ManagedVm,
  config: VmConfig,
  live: VmDevices,
  who = "a clone",
): void {
  const slots = configSlots(config);
  for (const disk of live.disks) {
    if ((disk.device !== null) !== slots.disks.has(disk.slot)) {
      throw new DaemonError(
        "PRECONDITION_FAILED",
        `VM '${vm.id}': disk slot ${disk.slot} (${disk.guestName}) differs from its config (a device added or removed through raw QMP); ${who} could not rebuild it — attach or detach it with vm.attachDisk/vm.detachDisk`,
      );
    }
  }
  for (const nic of live.nics) {
    if ((nic.device !== null) !== slots.nics.has(nic.slot)) {
      throw new DaemonError(
        "PRECONDITION_FAILED",
        `VM '${vm.id}': NIC slot ${nic.slot} (${nic.guestName}) differs from its config (a device added or removed through raw QMP); ${who} could not rebuild it — attach or detach it with vm.attachNic/vm.detachNic`,
      );
    }
  }
}

/** A disk's file name inside the template: its position, then its own name made safe. */
function diskFileName(index: number, file: string): string {
  const base = path.basename(file).replace(/[^A-Za-z0-9._-]/g, "_");
  return `${index}-${base}`.slice(0, 128);
}

async function allocated(file: string): Promise<{ size: number; allocated: number }> {
  const info = await stat(file);
  return { size: info.size, allocated: info.blocks * 512 };
}

export class TemplateStore {
  /** Names being snapshotted, so two snapshots into one name cannot race. */
  private readonly reserved = new Set<string>();
  private readonly starting = new Map<string, number>();
  private metaChain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly root: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Creates the directory and removes what a crash left half-built (staging and virga-vmm's temporaries). */
  prepare(): void {
    privateDir(this.root);
    for (const name of readdirSync(this.root)) {
      if (name.startsWith("."))
        rmSync(path.join(this.root, name), { recursive: true, force: true });
    }
  }

  dir(name: string): string {
    return path.join(this.root, name);
  }

  async list(): Promise<TemplateInfo[]> {
    const names = (await readdir(this.root, { withFileTypes: true }))
      .filter((entry) => entry.isDirectory() && TEMPLATE_NAME.test(entry.name))
      .map((entry) => entry.name)
      .sort();
    const result: TemplateInfo[] = [];
    for (const name of names) {
      try {
        result.push(this.read(name));
      } catch {
        // removed meanwhile, or not a template
      }
    }
    return result.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** NOT_FOUND naming `field` when there is none. */
  get(name: string, field = "template"): TemplateInfo {
    checkTemplateName(name, field);
    if (!existsSync(path.join(this.dir(name), "meta.json"))) throw templateNotFound(name, field);
    return this.read(name);
  }

  private read(name: string): TemplateInfo {
    const dir = this.dir(name);
    const meta = readJson(path.join(dir, "meta.json")) as TemplateMeta;
    const config = vmConfigSchema.parse(readJson(path.join(dir, "config.json")));
    return { ...meta, dir, clonesStarting: this.starting.get(name) ?? 0, config };
  }

  /**
   * Snapshots a running or paused VM into a new template. The VM is paused
   * by the snapshot (virga-vmm's migrate) and stays paused while its disks
   * are copied, so memory and disks are of one instant; a VM that was
   * running runs on afterwards unless `stayPaused`. On a failure nothing is
   * left and a VM that was running is resumed.
   */
  async snapshot(vm: ManagedVm, name: string, stayPaused: boolean): Promise<TemplateInfo> {
    checkTemplateName(name);
    if (this.reserved.has(name) || existsSync(this.dir(name))) {
      throw new DaemonError("CONFLICT", `template: a template named '${name}' exists already`);
    }
    this.reserved.add(name);
    const staging = path.join(this.root, `.new-${name}-${randomBytes(4).toString("hex")}`);
    try {
      // The VM's lock: no start, stop or device change while its state is saved.
      return await vm.editDevices(async (view) => {
        if (!SNAPSHOT_STATES.includes(view.state)) {
          throw wrongState(view.id, view.state, "snapshot", SNAPSHOT_STATES);
        }
        const qmp = view.qmp;
        if (qmp === null) throw wrongState(view.id, view.state, "snapshot", SNAPSHOT_STATES);
        const live = await listDevices(vm);
        checkConfigMatches(vm, view.config, live);
        privateDir(staging);
        const wasRunning = view.state === "running";
        const pausedAt = Date.now();
        const disks: TemplateDisk[] = [];
        const drives = [...view.config.drives];
        try {
          const reply = await qmp.request(
            "migrate",
            { uri: `file:${staging}` },
            MIGRATE_TIMEOUT_MS,
          );
          if (reply.error !== undefined) {
            throw new DaemonError(
              "INTERNAL_SERVER_ERROR",
              `VM '${vm.id}' could not be snapshotted: ${reply.error.desc}`,
            );
          }
          await mkdir(path.join(staging, "disks"), { mode: 0o700 });
          const slots = configSlots(view.config);
          for (const [index, drive] of view.config.drives.entries()) {
            const copy = path.join(staging, "disks", diskFileName(index, drive.file));
            const copied = await copyDisk(drive.file, copy);
            drives[index] = {
              ...drive,
              file: path.join(this.dir(name), "disks", path.basename(copy)),
            };
            const slot = [...slots.disks].find(([, used]) => used.drive?.id === drive.id)?.[0];
            if (slot === undefined) continue; // a drive no device uses is copied but not listed
            disks.push({
              slot,
              file: drives[index].file,
              sourceFile: drive.file,
              sizeBytes: copied.sizeBytes,
              readOnly: drive.readOnly,
            });
          }
        } finally {
          if (wasRunning && !stayPaused) {
            const resumed = await qmp.request("cont").catch((error: unknown) => ({
              error: { class: "Error", desc: messageOf(error) },
            }));
            if (resumed.error !== undefined) {
              // The template may still be good; the VM stays paused and says why in the log.
              this.log(`${vm.id}: resuming after the snapshot '${name}': ${resumed.error.desc}`);
            }
          }
        }
        const pausedMs = Date.now() - pausedAt;
        const config: VmConfig = { ...view.config, drives };
        delete config.incoming;
        const meta: TemplateMeta = {
          name,
          source: { id: vm.id, name: vm.summary().name },
          createdAt: new Date().toISOString(),
          pausedMs,
          memoryBytes: config.memoryBytes,
          vcpus: config.smp.cpus,
          sizes: await this.sizesOf(staging),
          disks: disks.sort((a, b) => a.slot - b.slot),
          nics: live.nics
            .filter((nic) => nic.device !== null)
            .map((nic) => ({
              slot: nic.slot,
              mac: nic.mac,
              ...(nic.guestMac === undefined ? {} : { guestMac: nic.guestMac }),
              bridge: nic.bridge,
              tap: nic.ifname,
            })),
          clonesMade: 0,
        };
        await writeJson(path.join(staging, "config.json"), config);
        await writeJson(path.join(staging, "meta.json"), meta);
        await rename(staging, this.dir(name));
        return this.read(name);
      });
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    } finally {
      this.reserved.delete(name);
    }
  }

  private async sizesOf(dir: string): Promise<TemplateSizes> {
    const state = await allocated(path.join(dir, "state"));
    const memory = await allocated(path.join(dir, "memory"));
    let disksBytes = 0;
    let disksAllocatedBytes = 0;
    for (const name of await readdir(path.join(dir, "disks"))) {
      const disk = await allocated(path.join(dir, "disks", name));
      disksBytes += disk.size;
      disksAllocatedBytes += disk.allocated;
    }
    return {
      stateBytes: state.size,
      memoryFileBytes: memory.size,
      memoryAllocatedBytes: memory.allocated,
      disksBytes,
      disksAllocatedBytes,
      allocatedBytes: state.allocated + memory.allocated + disksAllocatedBytes,
    };
  }

  /**
   * Deletes a template. Refused while clones are being started from it and
   * while a clone that has not restored yet (its first start failed) needs
   * it. Running clones keep their mapping of its memory until they exit.
   */
  async remove(name: string, waitingClones: string[]): Promise<{ name: string }> {
    this.get(name, "name");
    const starting = this.starting.get(name) ?? 0;
    if (starting > 0) {
      throw new DaemonError(
        "PRECONDITION_FAILED",
        `template '${name}' is in use: ${starting} clone${starting === 1 ? " is" : "s are"} being started from it`,
      );
    }
    if (waitingClones.length > 0) {
      throw new DaemonError(
        "PRECONDITION_FAILED",
        `template '${name}' is needed by clones that have not restored it yet (${waitingClones.join(", ")}): start or delete them first`,
      );
    }
    // Renamed first, so a half-removed template is never listed.
    const doomed = path.join(this.root, `.del-${name}-${randomBytes(4).toString("hex")}`);
    await rename(this.dir(name), doomed);
    await rm(doomed, { recursive: true, force: true });
    return { name };
  }

  /** Marks clones being made from `name` (delete waits for them); the result ends the mark. */
  async cloning<T>(name: string, count: number, body: () => Promise<T>): Promise<T> {
    this.starting.set(name, (this.starting.get(name) ?? 0) + count);
    try {
      return await body();
    } finally {
      const left = (this.starting.get(name) ?? count) - count;
      if (left > 0) this.starting.set(name, left);
      else this.starting.delete(name);
    }
  }

  /** Adds to the count of clones made (meta.json writes one at a time). */
  recordClones(name: string, made: number): Promise<void> {
    const next = this.metaChain.then(async () => {
      const file = path.join(this.dir(name), "meta.json");
      if (made === 0 || !existsSync(file)) return;
      const meta = readJson(file) as TemplateMeta;
      meta.clonesMade += made;
      await writeJson(file, meta);
    });
    this.metaChain = next.catch(() => undefined);
    return next;
  }
}
