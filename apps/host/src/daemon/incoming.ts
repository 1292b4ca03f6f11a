// Live migration, the destination's side: another virgad asks for a VM to
// receive (`migration.prepareIncoming`). The machine is
// the source's config rewired to this host: its own VM directory, sockets
// and log, its own taps on the same bridges, the MACs the guest read, the
// same disks at the same paths (shared storage, checked here: each must
// exist and have the source's size), and `incoming: tcp:<address>:<port>`
// on a port picked here. The VM is started at once and waits in `incoming`
// for the source to connect; it runs as soon as the state is in. One whose
// process ends before that (the source cancelled, failed, or vanished)
// never ran: it is removed with its taps, as is one the source aborts or
// that nobody connects to within a minute.
import { randomBytes } from "node:crypto";
import { link, mkdir, realpath, stat } from "node:fs/promises";
import net from "node:net";
import { hostname } from "node:os";
import path from "node:path";
import type { z } from "zod";
import type { VmConfig } from "../config/vm-config";
import type { ImageDirs } from "./confine";
import type { Daemon } from "./daemon";
import { wireNics } from "./devices";
import { DaemonError, badRequest, messageOf } from "./errors";
import { writeJson } from "./json-file";
import type { abortIncomingInput, incomingInput } from "./routers/migration.schema";
import { vmDisksDir, type VmPaths } from "./run-dir";
import { checkBridge, type OwnedTap } from "./taps";
import { LIVE_STATES, type ManagedVm, type MigrationMark, type VmExit } from "./vm";
import { confineConfig, ownedFields } from "./vm-input";

export type IncomingInput = z.infer<typeof incomingInput>;
export type AbortIncomingInput = z.infer<typeof abortIncomingInput>;

export interface IncomingReady {
  id: string;
  /** The TCP port the VM listens on for the source, on this virgad's migration address. */
  port: number;
}

/** What a local migration's destination is built from: the source's machine as migration.ts read it. */
export type LocalMachine = Pick<IncomingInput, "config" | "nics" | "paused">;

/** How long a destination waits for its source to start sending. */
const CONNECT_TIMEOUT_MS = 60000;

/** A port free on `host` right now (the VM binds it a moment later). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

export function tcpUri(host: string, port: number): string {
  return `tcp:${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Each disk must be the source's: the same file at the same path (shared storage), the same size. */
async function checkDisks(disks: IncomingInput["disks"], images: ImageDirs): Promise<void> {
  const shared = "a migrated VM needs its disks on storage both hosts share, at the same path";
  for (const [index, disk] of disks.entries()) {
    const field = `disks.${index}.file`;
    try {
      await stat(disk.file);
    } catch {
      throw badRequest(`${field}: '${disk.file}' does not exist on the destination; ${shared}`);
    }
    await images.check(field, disk.file, "disk");
    const size = (await stat(disk.file)).size;
    if (size !== disk.sizeBytes) {
      throw badRequest(
        `${field}: '${disk.file}' is ${size} bytes on the destination and ${disk.sizeBytes} on the source; ${shared}`,
      );
    }
  }
}

/**
 * The source's machine wired to this host: `paths`' sockets and log, a tap
 * of its own per NIC on the source NIC's bridge, each NIC pinned to the
 * MAC the guest read, and the migration's listening address.
 */
export function incomingConfig(
  source: VmConfig,
  nics: IncomingInput["nics"],
  paths: VmPaths,
  incoming: string,
  paused: boolean,
): { config: VmConfig; taps: OwnedTap[] } {
  const { netdevs, devices, taps } = wireNics(source, paths.dir, (slot) => {
    const nic = nics.find((n) => n.slot === slot);
    if (nic === undefined) {
      throw badRequest(`nics: NIC slot ${slot} of the config is missing from the source's NICs`);
    }
    return nic;
  });
  const config: VmConfig = {
    ...source,
    ...ownedFields(paths),
    netdevs,
    devices,
    startPaused: paused,
    incoming,
  };
  delete config.pidfile;
  return { config, taps };
}

export class IncomingMigrations {
  private readonly guards = new Map<string, NodeJS.Timeout>();
  /** Removals in flight, so the VM's end and an abort do not remove it twice. */
  private readonly removing = new Map<string, Promise<void>>();

  constructor(
    private readonly daemon: Daemon,
    /** The address VMs listen on for incoming migrations (virgad's --listen host by default). */
    private readonly address: string,
  ) {}

  /** Creates the VM to receive and starts it waiting; returns the port the source connects to. */
  async prepare(input: IncomingInput): Promise<IncomingReady> {
    const daemon = this.daemon;
    if (daemon.find(input.id)?.migration?.migrationId === input.migrationId) {
      throw badRequest(
        `destination.url: that is the source's own virgad (VM '${input.id}' runs there); migrate to another virgad, or with local: true to a new process on this host`,
      );
    }
    daemon.checkNewId(input.id);
    await checkDisks(input.disks, daemon.images);
    for (const [index, nic] of input.nics.entries()) {
      checkBridge(`nics.${index}.bridge`, nic.bridge);
    }
    const port = await freePort(this.address);
    const mark: MigrationMark = {
      migrationId: input.migrationId,
      role: "destination",
      peer: input.source,
      startedAt: new Date().toISOString(),
      status: "setup",
    };
    await daemon.register(
      input.id,
      { name: input.name, migration: mark },
      async (staged, final) => {
        const { config, taps } = incomingConfig(
          input.config,
          input.nics,
          final,
          tcpUri(this.address, port),
          input.paused,
        );
        await writeJson(staged.config, await confineConfig(config, daemon.images));
        return taps.length === 0 ? {} : { taps };
      },
    );
    const vm = daemon.vm(input.id);
    this.publish(vm, mark, "setup");
    try {
      await vm.start(input.paused, { incoming: true });
    } catch (error) {
      await this.remove(vm, messageOf(error));
      throw error;
    }
    this.guard(vm, mark.migrationId);
    daemon.logLine(
      `${vm.id}: waiting for migration ${mark.migrationId} from ${input.source} on port ${port}`,
    );
    return { id: vm.id, port };
  }

  /**
   * A local migration's destination (vm.migrate {local: true}): a VM of its
   * own under a passing id, waiting on a unix socket in its directory, that
   * takes the source's place once the guest is in (local-migration.ts).
   * Disks in the source's directory (a clone's copies) are hard-linked into
   * its own, since the source's directory goes with the source.
   */
  async prepareLocal(
    source: ManagedVm,
    machine: LocalMachine,
    migrationId: string,
  ): Promise<{ id: string; uri: string }> {
    const daemon = this.daemon;
    const id = `mig-${randomBytes(5).toString("hex")}`;
    const mark: MigrationMark = {
      migrationId,
      role: "destination",
      peer: hostname(),
      startedAt: new Date().toISOString(),
      status: "setup",
      replaces: source.id,
    };
    let uri = "";
    await daemon.register(
      id,
      { name: source.summary().name, migration: mark },
      async (staged, final) => {
        uri = `unix:${path.join(final.dir, "migrate.sock")}`;
        const { config, taps } = incomingConfig(
          machine.config,
          machine.nics,
          final,
          uri,
          machine.paused,
        );
        const own = vmDisksDir(source.paths);
        const owned = [own, await realpath(own).catch(() => own)];
        const drives = [];
        for (const drive of config.drives) {
          const base = owned.find((dir) => drive.file.startsWith(dir + path.sep));
          if (base === undefined) {
            drives.push(drive);
            continue;
          }
          const relative = path.relative(base, drive.file);
          const linked = path.join(vmDisksDir(staged), relative);
          await mkdir(path.dirname(linked), { recursive: true, mode: 0o700 });
          await link(drive.file, linked);
          drives.push({ ...drive, file: path.join(vmDisksDir(final), relative) });
        }
        await writeJson(staged.config, { ...config, drives });
        return taps.length === 0 ? {} : { taps };
      },
    );
    const vm = daemon.vm(id);
    this.publish(vm, mark, "setup");
    try {
      await vm.start(machine.paused, { incoming: true });
    } catch (error) {
      await this.remove(vm, messageOf(error));
      throw error;
    }
    this.guard(vm, mark.migrationId);
    daemon.logLine(`${id}: waiting for migration ${migrationId} of ${source.id} on ${uri}`);
    return { id, uri };
  }

  /** The source gave up: the VM that was to receive its guest goes (nothing if it is gone already). */
  async abort(input: AbortIncomingInput): Promise<{ id: string }> {
    const vm = this.daemon.find(input.id);
    if (vm === null) return { id: input.id };
    const mark = vm.migration;
    if (mark?.role !== "destination" || mark.migrationId !== input.migrationId) {
      throw new DaemonError(
        "PRECONDITION_FAILED",
        `VM '${vm.id}' is not the destination of migration ${input.migrationId} (it runs here)`,
      );
    }
    await this.remove(vm, "the source gave up the migration");
    return { id: input.id };
  }

  /** A MIGRATION event of a destination VM. */
  onEvent(vm: ManagedVm, status: string): void {
    const mark = vm.migration;
    if (mark?.role !== "destination") return;
    vm.migrationStatus(status);
    if (status === "active") this.unguard(vm.id);
    if (status !== "completed") return;
    this.unguard(vm.id);
    this.publish(vm, mark, "completed");
    this.daemon.logLine(`${vm.id}: migration ${mark.migrationId} from ${mark.peer} completed`);
    // A local destination keeps its mark until it has taken its source's place.
    if (mark.replaces !== undefined) return;
    void vm.setMigration(null).catch((error: unknown) => {
      this.daemon.logLine(`${vm.id}: ${messageOf(error)}`);
    });
  }

  /** A destination VM whose process ended before its guest came: it never ran, so it goes. */
  onEnded(vm: ManagedVm, exit: VmExit): void {
    void this.remove(
      vm,
      exit.error ?? `virga-vmm exited (code ${exit.code}, signal ${exit.signal})`,
    );
  }

  /** At virgad's start: a destination VM marked as such either still waits, has run, or is gone. */
  async recover(vm: ManagedVm): Promise<void> {
    const mark = vm.migration;
    if (mark?.role !== "destination") return;
    if (vm.state === "incoming") {
      this.guard(vm, mark.migrationId);
    } else if (LIVE_STATES.includes(vm.state)) {
      // Its guest came while virgad was away.
      const source = mark.replaces === undefined ? null : this.daemon.find(mark.replaces);
      if (source !== null && !LIVE_STATES.includes(source.state)) {
        await this.daemon.adoptLocal(source, vm);
        return;
      }
      await vm.setMigration(null);
    } else {
      await this.remove(vm, "its process ended while virgad was away");
    }
  }

  private guard(vm: ManagedVm, migrationId: string): void {
    this.unguard(vm.id);
    const timer = setTimeout(() => {
      this.guards.delete(vm.id);
      if (vm.migration?.migrationId !== migrationId || vm.migration.status !== "setup") return;
      this.daemon.logLine(
        `${vm.id}: no source connected for migration ${migrationId} within ${CONNECT_TIMEOUT_MS / 1000} s; removing it`,
      );
      void this.remove(vm, `no source connected within ${CONNECT_TIMEOUT_MS / 1000} s`);
    }, CONNECT_TIMEOUT_MS);
    timer.unref();
    this.guards.set(vm.id, timer);
  }

  private unguard(id: string): void {
    const timer = this.guards.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.guards.delete(id);
  }

  private publish(vm: ManagedVm, mark: MigrationMark, status: string, error?: string): void {
    this.daemon.bus.publish(vm.id, "VM_MIGRATION", {
      migrationId: mark.migrationId,
      role: "destination",
      status,
      peer: mark.peer,
      ...(error === undefined ? {} : { error }),
    });
  }

  /**
   * Kills the VM if it still runs, then removes it and its taps, saying why
   * (VM_MIGRATION failed); once, however often asked (its own end comes
   * here too while it is being killed).
   */
  private remove(vm: ManagedVm, why: string): Promise<void> {
    const pending = this.removing.get(vm.id);
    if (pending !== undefined) return pending;
    this.unguard(vm.id);
    const mark = vm.migration;
    if (mark !== null) this.publish(vm, mark, "failed", why);
    const removal = (async () => {
      try {
        if (LIVE_STATES.includes(vm.state)) await vm.kill().catch(() => undefined);
        if (this.daemon.find(vm.id) === vm) await this.daemon.remove(vm.id);
      } catch (error) {
        this.daemon.logLine(`${vm.id}: removing the migration's destination: ${messageOf(error)}`);
      } finally {
        this.removing.delete(vm.id);
      }
    })();
    this.removing.set(vm.id, removal);
    return removal;
  }
}
