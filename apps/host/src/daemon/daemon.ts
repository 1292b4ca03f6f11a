// virgad's state: the run directory, the image directories, the event bus
// and every VM. The tRPC routers are thin adapters over this class; tests
// can drive it directly.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { cloneTemplate, type CloneInput, type CloneReport } from "./clones";
import { ImageDirs } from "./confine";
import { ControlHostSupervisor } from "./control-host-supervisor";
import type { Tokens } from "./credentials";
import { DaemonError, badRequest, messageOf, notFound } from "./errors";
import { EventBus } from "./event-bus";
import { hostInfo, kvmFacts, type HostInfo, type KvmFacts } from "./host-info";
import { IncomingMigrations } from "./incoming";
import { Migrations } from "./migration";
import { joinConsoles, takePlace } from "./local-migration";
import { createBlankImage, listImages, type CreateImageInput, type ImageFile } from "./images";
import { finishUnplug, settleUnplugs } from "./pci-devices";
import { checkRawQmp } from "./qmp-allow-list";
import type { QmpReply } from "./qmp-link";
import { MAX_SOCKET_PATH, RunDir, VM_ID, privateDir, vmPaths, type VmPaths } from "./run-dir";
import { TemplateStore, type TemplateInfo } from "./templates";
import { ManagedVm, type VmContext, type VmMeta, type VmSummary } from "./vm";
import { confineConfig, normaliseConfig, type VmConfigInput } from "./vm-input";
import { VMM_BINARY } from "../vmm/vmm-binary";

/** apps/host, from dist/src/daemon. */
const hostDir = path.resolve(__dirname, "..", "..", "..");
export const repoRoot = path.resolve(hostDir, "..", "..");
export const VMM_BIN = VMM_BINARY;

/** Image directories when none are given: the guest builds in this repository. */
export function defaultImageDirs(): string[] {
  return [
    path.join(repoRoot, "build", "guests"),
    path.join(repoRoot, "native", "probe-guest", "build"),
  ];
}

export interface DaemonOptions {
  runDir: string;
  /** Default: defaultImageDirs(). <run>/images is always added. */
  imageDirs?: readonly string[];
  log?: (line: string) => void;
  vmmBin?: string;
  /** Start (or adopt) the control-plane host; default true. */
  controlHost?: boolean;
  /** The address VMs arriving by live migration listen on (virgad's --listen host; default 127.0.0.1). */
  migrationAddress?: string;
}

export interface SnapshotInput {
  id: string;
  template: string;
  /** Leave a running VM paused after the snapshot (default: it runs on). */
  stayPaused?: boolean | undefined;
}

export interface CreateVmInput {
  id?: string;
  name?: string;
  config: VmConfigInput;
}

export class Daemon {
  readonly run: RunDir;
  readonly images: ImageDirs;
  readonly bus: EventBus;
  readonly tokens: Tokens;
  readonly templates: TemplateStore;
  readonly controlHost: ControlHostSupervisor;
  readonly migrations: Migrations;
  readonly incoming: IncomingMigrations;
  private readonly vms = new Map<string, ManagedVm>();
  /** Ids being created, so two creates of one id cannot race. */
  private readonly reserved = new Set<string>();
  private readonly log: (line: string) => void;
  private readonly vmmBin: string;
  private readonly useControlHost: boolean;
  private kvm: KvmFacts | null = null;

  private constructor(options: DaemonOptions) {
    this.log = options.log ?? (() => undefined);
    this.vmmBin = options.vmmBin ?? VMM_BIN;
    this.useControlHost = options.controlHost !== false;
    this.run = new RunDir(options.runDir);
    this.run.prepare();
    this.tokens = this.run.tokens();
    this.images = new ImageDirs([...(options.imageDirs ?? defaultImageDirs()), this.run.imagesDir]);
    this.bus = new EventBus(this.run.eventsFile, this.log);
    this.templates = new TemplateStore(this.run.templatesDir, this.log);
    this.templates.prepare();
    this.controlHost = new ControlHostSupervisor(this.run, this.log);
    this.migrations = new Migrations(this);
    this.incoming = new IncomingMigrations(this, options.migrationAddress ?? "127.0.0.1");
  }

  /** Opens the run directory and re-attaches to every VM in it. */
  static async open(options: DaemonOptions): Promise<Daemon> {
    const daemon = new Daemon(options);
    if (daemon.useControlHost) await daemon.controlHost.ensure();
    for (const id of daemon.run.vmIds()) {
      try {
        daemon.vms.set(id, ManagedVm.load(daemon.run.vm(id), daemon.context()));
      } catch (error) {
        daemon.log(`skipping vms/${id}: ${messageOf(error)}`);
      }
    }
    await Promise.all([...daemon.vms.values()].map((vm) => vm.attach()));
    for (const vm of [...daemon.vms.values()]) {
      await daemon.migrations.recover(vm);
      await daemon.incoming.recover(vm);
      await settleUnplugs(vm).catch((error: unknown) => {
        daemon.log(`${vm.id}: checking its pending unplugs: ${messageOf(error)}`);
      });
    }
    return daemon;
  }

  private context(): VmContext {
    return {
      bus: this.bus,
      images: this.images,
      vmmBin: this.vmmBin,
      log: this.log,
      controlHost: this.useControlHost ? this.controlHost.socketPath : null,
      incomingEnded: (vm, exit) => {
        this.incoming.onEnded(vm, exit);
      },
      deviceDeleted: (vm, device) => {
        finishUnplug(vm, device).catch((error: unknown) => {
          this.log(`${vm.id}: finishing the unplug of '${device}': ${messageOf(error)}`);
        });
      },
      migrationEvent: (vm, status) => {
        if (vm.migration?.role === "source") vm.migrationStatus(status);
        else this.incoming.onEvent(vm, status);
      },
    };
  }

  list(): VmSummary[] {
    return [...this.vms.values()]
      .map((vm) => vm.summary())
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** The VM, or null (vm() throws NOT_FOUND instead). */
  find(id: string): ManagedVm | null {
    return this.vms.get(id) ?? null;
  }

  vm(id: string): ManagedVm {
    const vm = this.vms.get(id);
    if (vm === undefined) throw notFound(id);
    return vm;
  }

  /**
   * Validates, confines and stores a new VM (state `created`). The directory
   * is written under a staging name and renamed into place, so a failure
   * leaves nothing behind.
   */
  async create(input: CreateVmInput): Promise<VmSummary> {
    const id = input.id ?? `vm-${randomBytes(4).toString("hex")}`;
    const paths = this.checkNewId(id);
    const configName = (input.config as { name?: unknown }).name;
    const name = input.name ?? (typeof configName === "string" ? configName : id);
    const config = await confineConfig(normaliseConfig(input.config, name, paths), this.images);
    return this.register(id, { name }, async (staged) => {
      // The config names the final paths; only the folder moves.
      await writeFile(staged.config, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
      return undefined;
    });
  }

  /** Refuses an id that is malformed, taken, or too long for the VM's socket paths. */
  checkNewId(id: string, field = "id"): VmPaths {
    if (!VM_ID.test(id)) {
      throw badRequest(
        `${field}: '${id}' must match ${String(VM_ID)} (lowercase letters, digits, '-')`,
      );
    }
    if (this.idTaken(id)) throw new DaemonError("CONFLICT", `a VM with id '${id}' already exists`);
    const paths = this.run.vm(id);
    if (Buffer.byteLength(paths.console) > MAX_SOCKET_PATH) {
      throw badRequest(
        `${field}: '${id}' makes the socket path ${paths.console} longer than ${MAX_SOCKET_PATH} bytes; use a shorter id or run directory`,
      );
    }
    return paths;
  }

  idTaken(id: string): boolean {
    return this.vms.has(id) || this.reserved.has(id);
  }

  /**
   * Stores a new VM: `fill` writes config.json (and whatever else the VM
   * starts with) into a staging directory, which is renamed into place with
   * its meta.json; on any failure nothing is left.
   */
  async register(
    id: string,
    meta: Pick<VmMeta, "name"> & Partial<VmMeta>,
    fill: (staged: VmPaths, final: VmPaths) => Promise<Partial<VmMeta> | undefined>,
  ): Promise<VmSummary> {
    const paths = this.checkNewId(id);
    this.reserved.add(id);
    const staging = this.run.staging(id);
    try {
      privateDir(staging);
      const staged = vmPaths(staging);
      const more = await fill(staged, paths);
      const full: VmMeta = {
        ...meta,
        ...more,
        id,
        createdAt: new Date().toISOString(),
        startedAt: null,
        state: "created",
        exit: null,
      };
      writeFileSync(staged.meta, JSON.stringify(full, null, 2) + "\n", { mode: 0o600 });
      await rename(staging, paths.dir);
      this.vms.set(id, ManagedVm.load(paths, this.context()));
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      if (error instanceof DaemonError) throw error;
      throw new DaemonError("INTERNAL_SERVER_ERROR", `creating VM '${id}': ${messageOf(error)}`, {
        cause: error,
      });
    } finally {
      this.reserved.delete(id);
    }
    const created: Record<string, unknown> = { name: meta.name };
    if (meta.clonedFrom !== undefined) created.template = meta.clonedFrom;
    this.bus.publish(id, "VM_CREATED", created);
    return this.vm(id).summary();
  }

  async remove(id: string): Promise<{ id: string }> {
    const vm = this.vm(id);
    await vm.remove();
    this.vms.delete(id);
    this.bus.publish(id, "VM_DELETED", {});
    return { id };
  }

  /**
   * A VM whose live migration completed belongs to the destination now: its
   * process, directory and taps here go (migration.ts then says where it went).
   */
  async handOver(vm: ManagedVm): Promise<void> {
    try {
      await vm.releaseMigrated();
    } catch (error) {
      this.log(`${vm.id}: releasing the migrated VM: ${messageOf(error)}`);
    }
    if (this.vms.get(vm.id) === vm) this.vms.delete(vm.id);
  }

  /**
   * A local migration completed (local-migration.ts): `incoming`, which
   * received the guest, takes `source`'s place (its id, name and history);
   * the source's process, directory and taps go.
   */
  async adoptLocal(source: ManagedVm, incoming: ManagedVm): Promise<void> {
    const id = source.id;
    const replaced = {
      summary: source.summary(),
      balloonTargetBytes: source.deviceView().balloonTargetBytes,
    };
    await incoming.handOff();
    this.vms.delete(incoming.id);
    try {
      await source.releaseMigrated(() =>
        joinConsoles(source.paths.dir, incoming.paths.dir).catch((error: unknown) => {
          this.log(`${id}: carrying the console's history over: ${messageOf(error)}`);
        }),
      );
    } catch (error) {
      this.log(`${id}: releasing the migrated VM: ${messageOf(error)}`);
    }
    try {
      await takePlace(incoming.paths, this.run.vm(id), replaced);
    } catch (error) {
      // Its process runs on under the passing id: keep serving it there.
      this.log(`${id}: ${incoming.id} could not take its place: ${messageOf(error)}`);
      if (this.vms.get(id) === source) this.vms.delete(id);
      const kept = ManagedVm.load(incoming.paths, this.context());
      this.vms.set(incoming.id, kept);
      await kept.attach();
      throw error;
    }
    const adopted = ManagedVm.load(this.run.vm(id), this.context());
    this.vms.set(id, adopted);
    await adopted.attach();
    this.bus.publish(incoming.id, "VM_DELETED", { replaced: id });
    this.bus.publish(id, "VM_STATE", { state: adopted.state, pid: adopted.processId });
  }

  /** Raw QMP: only what the allow-list lets through, with its paths confined. */
  async qmp(id: string, execute: string, args?: unknown): Promise<QmpReply> {
    const vm = this.vm(id);
    const checked = await checkRawQmp(execute, args, this.images);
    return vm.qmpRequest(execute, checked);
  }

  /** A running or paused VM into a new template (templates.ts). */
  snapshot(input: SnapshotInput): Promise<TemplateInfo> {
    return this.templates.snapshot(this.vm(input.id), input.template, input.stayPaused ?? false);
  }

  /** Clones of a template, started in parallel (clones.ts). */
  clone(input: CloneInput): Promise<CloneReport> {
    return cloneTemplate(this, input);
  }

  deleteTemplate(name: string): Promise<{ name: string }> {
    const dir = this.templates.dir(name);
    const waiting = [...this.vms.values()]
      .filter((vm) => vm.summary().config.incoming === `file:${dir}`)
      .map((vm) => vm.id);
    return this.templates.remove(name, waiting);
  }

  logLine(line: string): void {
    this.log(line);
  }

  listImages(): Promise<ImageFile[]> {
    return listImages(this.images, this.usedBy);
  }

  /** A blank raw image in an image directory (default: <run>/images). */
  createImage(input: CreateImageInput): Promise<ImageFile> {
    return createBlankImage(this.images, this.run.imagesDir, input, this.usedBy);
  }

  /** The VMs whose config names `file` as a disk. */
  private readonly usedBy = (file: string): string[] =>
    [...this.vms.values()]
      .filter((vm) => vm.summary().config.drives.some((d) => d.file === file))
      .map((vm) => vm.id);

  hostInfo(): HostInfo {
    this.kvm ??= kvmFacts();
    return hostInfo([...this.vms.values()], this.kvm);
  }

  /** Lets go of every VM (they keep running, served by the host). */
  async close(): Promise<void> {
    this.controlHost.close();
    await Promise.all([...this.vms.values()].map((vm) => vm.detach()));
    this.bus.close();
  }
}
