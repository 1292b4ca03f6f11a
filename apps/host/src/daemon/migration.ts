// Live migration, the source's side (vm.migrate, vm.migrateCancel,
// vm.migration, vm.migrations). The destination is another virgad, given by
// its URL and token: it is asked to build the same machine and wait for it
// (incoming.ts), then the VM's QMP `migrate tcp:` sends the guest there.
// Or it is this virgad (`local: true`): a new virga-vmm process here gets
// the guest over a unix socket and takes the VM's place (local-migration.ts).
//
// Everything that can be refused is refused before the guest moves: a VM
// that is not running or paused or is being migrated, a machine that
// differs from its config, a NIC on a tap virgad did not make (the
// destination can only make taps of its own on the same bridge), and, at
// the destination, a disk that is not the same file at the same path
// (shared storage) or a bridge that is missing. While it runs the VM
// carries a migration mark: device changes and snapshots are refused.
//
// query-migrate is polled while it runs; each round, status change and at
// most every PROGRESS_MS a `VM_MIGRATION` event carries the statistics to
// subscribers. Completed: the source's process has handed its guest over
// and exits; its record goes (VM_DELETED with `migratedTo`) and the VM
// belongs to the destination. Failed or cancelled: virga-vmm keeps the
// guest running at the source, and the destination is told to drop its
// half (its process ends by itself too; incoming.ts removes it).
import { stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { z } from "zod";
import type { Daemon } from "./daemon";
import { configSlots, listDevices } from "./devices";
import { DaemonError, messageOf, wrongState } from "./errors";
import { tcpUri } from "./incoming";
import { onPeer, peerClient, type PeerClient } from "./peer";
import type { migrateInput } from "./routers/migration.schema";
import { checkConfigMatches } from "./templates";
import type { ManagedVm, MigrationMark, VmState } from "./vm";

export type MigrateInput = z.infer<typeof migrateInput>;

/** QEMU's query-migrate figures, in virgad's names (null: not reported yet). */
export interface MigrationStats {
  totalTimeMs: number | null;
  setupTimeMs: number | null;
  downtimeMs: number | null;
  expectedDowntimeMs: number | null;
  transferredBytes: number | null;
  remainingBytes: number | null;
  totalBytes: number | null;
  /** Pages sent as zero-page markers, and pages sent whole. */
  duplicatePages: number | null;
  normalPages: number | null;
  dirtyPagesRate: number | null;
  mbps: number | null;
  /** Dirty-log syncs: 1 after the bulk copy, one more per round. */
  rounds: number | null;
}

export type MigrationStatus = "setup" | "active" | "device" | "completed" | "failed" | "cancelled";

export interface MigrationInfo {
  migrationId: string;
  vmId: string;
  vmName: string;
  /** The destination virgad's URL, or "local" (a new process on this host). */
  destination: string;
  /** tcp to another virgad, unix within this one. */
  transport: "tcp" | "unix";
  startedAt: string;
  finishedAt: string | null;
  status: MigrationStatus;
  downtimeLimitMs: number | null;
  maxBandwidth: number | null;
  stats: MigrationStats | null;
  error: string | null;
}

const MIGRATE_STATES: readonly VmState[] = ["running", "paused"];
const POLL_MS = 50;
const PROGRESS_MS = 500;
const HISTORY_KEPT = 100;
const ENDED: readonly string[] = ["completed", "failed", "cancelled"];

interface RawMigrate {
  status?: string;
  "total-time"?: number;
  "setup-time"?: number;
  downtime?: number;
  "expected-downtime"?: number;
  "error-desc"?: string;
  ram?: {
    transferred?: number;
    remaining?: number;
    total?: number;
    duplicate?: number;
    normal?: number;
    "dirty-pages-rate"?: number;
    mbps?: number;
    "dirty-sync-count"?: number;
  };
}

function statsOf(raw: RawMigrate): MigrationStats {
  const ram = raw.ram ?? {};
  return {
    totalTimeMs: raw["total-time"] ?? null,
    setupTimeMs: raw["setup-time"] ?? null,
    downtimeMs: raw.downtime ?? null,
    expectedDowntimeMs: raw["expected-downtime"] ?? null,
    transferredBytes: ram.transferred ?? null,
    remainingBytes: ram.remaining ?? null,
    totalBytes: ram.total ?? null,
    duplicatePages: ram.duplicate ?? null,
    normalPages: ram.normal ?? null,
    dirtyPagesRate: ram["dirty-pages-rate"] ?? null,
    mbps: ram.mbps ?? null,
    rounds: ram["dirty-sync-count"] ?? null,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The host part of a URL as a tcp: migration address takes it (no IPv6 brackets). */
function urlHost(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, "$1");
}

/** Where the guest goes: another virgad, or the VM that takes its place here. */
type Destination = { peer: PeerClient; url: string } | { incomingId: string };

interface Outgoing {
  info: MigrationInfo;
  vm: ManagedVm;
  destination: Destination;
  done: Promise<MigrationInfo>;
}

export const LOCAL = "local";

export class Migrations {
  private readonly running = new Map<string, Outgoing>();
  private readonly history: MigrationInfo[] = [];

  constructor(private readonly daemon: Daemon) {}

  /** Starts a live migration; resolves once it is under way, or once it ended with `wait`. */
  async migrate(input: MigrateInput): Promise<MigrationInfo> {
    const vm = this.daemon.vm(input.id);
    const migrationId = input.migrationId ?? `mig-${randomBytes(6).toString("hex")}`;
    if (this.find(migrationId) !== null) {
      throw new DaemonError("CONFLICT", `migrationId: a migration '${migrationId}' exists already`);
    }
    const remote = input.destination;
    const url = remote === undefined ? LOCAL : remote.url.replace(/\/+$/, "");
    const mark: MigrationMark = {
      migrationId,
      role: "source",
      peer: url,
      startedAt: new Date().toISOString(),
      status: "setup",
    };
    // Under the VM's lock: no start, stop or device change while the machine is read and marked.
    const machine = await vm.editDevices(async (view) => {
      if (!MIGRATE_STATES.includes(view.state)) {
        throw wrongState(view.id, view.state, "migrate", MIGRATE_STATES);
      }
      const live = await listDevices(vm);
      checkConfigMatches(vm, view.config, live, "the destination");
      const nics = [];
      for (const nic of live.nics) {
        if (nic.device === null) continue;
        if (nic.bridge === null) {
          throw new DaemonError(
            "PRECONDITION_FAILED",
            `VM '${vm.id}': NIC slot ${nic.slot} (${nic.guestName}) is on tap '${nic.ifname ?? "?"}', which virgad did not make; the destination can only make a tap of its own on a bridge — reattach the NIC with vm.attachNic {bridge}`,
          );
        }
        nics.push({ slot: nic.slot, mac: nic.mac, bridge: nic.bridge });
      }
      const disks = [];
      for (const [slot, used] of configSlots(view.config).disks) {
        if (used.drive === undefined) continue;
        const size = await stat(used.drive.file).then(
          (s) => s.size,
          () => {
            throw new DaemonError(
              "PRECONDITION_FAILED",
              `VM '${vm.id}': disk slot ${slot}: '${used.drive?.file ?? ""}' cannot be read here`,
            );
          },
        );
        disks.push({ file: used.drive.file, sizeBytes: size });
      }
      await vm.setMigration(mark);
      return { config: view.config, nics, disks, paused: view.state === "paused" };
    });
    const info: MigrationInfo = {
      migrationId,
      vmId: vm.id,
      vmName: vm.summary().name,
      destination: url,
      transport: remote === undefined ? "unix" : "tcp",
      startedAt: mark.startedAt,
      finishedAt: null,
      status: "setup",
      downtimeLimitMs: input.downtimeLimitMs ?? null,
      maxBandwidth: input.maxBandwidth ?? null,
      stats: null,
      error: null,
    };
    let destination: Destination;
    let uri: string;
    try {
      if (remote === undefined) {
        const incoming = await this.daemon.incoming.prepareLocal(vm, machine, migrationId);
        destination = { incomingId: incoming.id };
        uri = incoming.uri;
      } else {
        const peer = peerClient(url, remote.token, remote.pin);
        const { port } = await onPeer(peer, url, (c) =>
          c.migration.prepareIncoming.mutate({
            migrationId,
            id: vm.id,
            name: info.vmName,
            ...machine,
            source: hostname(),
          }),
        );
        destination = { peer, url };
        uri = tcpUri(urlHost(url), port);
      }
    } catch (error) {
      await vm.setMigration(null);
      throw error;
    }
    this.publish(vm, info);
    try {
      await this.send(vm, uri, input);
    } catch (error) {
      await vm.setMigration(null);
      await this.abortDestination(destination, vm.id, migrationId);
      throw error;
    }
    const outgoing: Outgoing = { info, vm, destination, done: Promise.resolve(info) };
    outgoing.done = this.follow(outgoing);
    this.running.set(vm.id, outgoing);
    this.remember(info);
    this.daemon.logLine(`${vm.id}: migration ${migrationId} to ${url} started`);
    if (input.wait === true) return outgoing.done;
    return { ...info };
  }

  /** Cancels the VM's migration; resolves once it has ended (the VM runs on here). */
  async cancel(id: string): Promise<MigrationInfo> {
    const vm = this.daemon.vm(id);
    const outgoing = this.running.get(id);
    if (outgoing === undefined) {
      throw new DaemonError("PRECONDITION_FAILED", `VM '${vm.id}' is not being migrated`);
    }
    const reply = await vm.qmpRequest("migrate_cancel");
    if (reply.error !== undefined && !ENDED.includes(outgoing.info.status)) {
      throw new DaemonError(
        "INTERNAL_SERVER_ERROR",
        `VM '${vm.id}' refused migrate_cancel: ${reply.error.desc}`,
      );
    }
    return outgoing.done;
  }

  /** A migration this virgad sent, running or among the last HISTORY_KEPT. */
  get(migrationId: string): MigrationInfo {
    const found = this.find(migrationId);
    if (found === null) {
      throw new DaemonError("NOT_FOUND", `migrationId: no migration '${migrationId}' here`);
    }
    return { ...found };
  }

  list(): MigrationInfo[] {
    return this.history.map((info) => ({ ...info }));
  }

  /** At virgad's start: a source VM still marked was left mid-migration; virga-vmm decided its end. */
  async recover(vm: ManagedVm): Promise<void> {
    const mark = vm.migration;
    if (mark?.role !== "source") return;
    this.daemon.logLine(
      `${vm.id}: migration ${mark.migrationId} to ${mark.peer} was in progress when virgad stopped; it is no longer followed`,
    );
    await vm.setMigration(null);
  }

  private find(migrationId: string): MigrationInfo | null {
    return this.history.find((info) => info.migrationId === migrationId) ?? null;
  }

  private remember(info: MigrationInfo): void {
    this.history.unshift(info);
    this.history.splice(HISTORY_KEPT);
  }

  private async send(vm: ManagedVm, uri: string, input: MigrateInput) {
    const parameters: Record<string, number> = {};
    if (input.downtimeLimitMs !== undefined) parameters["downtime-limit"] = input.downtimeLimitMs;
    if (input.maxBandwidth !== undefined) parameters["max-bandwidth"] = input.maxBandwidth;
    if (Object.keys(parameters).length > 0) {
      const set = await vm.qmpRequest("migrate-set-parameters", parameters);
      if (set.error !== undefined) {
        throw new DaemonError(
          "BAD_REQUEST",
          `VM '${vm.id}' refused the parameters: ${set.error.desc}`,
        );
      }
    }
    const reply = await vm.qmpRequest("migrate", { uri });
    if (reply.error !== undefined) {
      throw new DaemonError(
        "INTERNAL_SERVER_ERROR",
        `VM '${vm.id}' could not start the migration: ${reply.error.desc}`,
      );
    }
  }

  /** Polls query-migrate until the end, publishing progress; then settles both sides. */
  private async follow(outgoing: Outgoing): Promise<MigrationInfo> {
    const { info, vm } = outgoing;
    let lastPublished = 0;
    let lastRounds: number | null = null;
    let lastStatus = "";
    let failures = 0;
    for (;;) {
      let raw: RawMigrate;
      try {
        const reply = await vm.qmpRequest("query-migrate");
        if (reply.error !== undefined) throw new Error(reply.error.desc);
        raw = reply.return as RawMigrate;
        failures = 0;
      } catch (error) {
        // The source's process gone (killed, or it exited after handing over).
        if (vm.processId === null || ++failures > 40) {
          // Its MIGRATION event said so before it went (vm.ts keeps it in the mark).
          const handedOver = vm.migration?.status === "completed";
          info.status = handedOver ? "completed" : "failed";
          if (!handedOver) info.error = `the source VM ended: ${messageOf(error)}`;
          break;
        }
        await sleep(POLL_MS);
        continue;
      }
      const status = raw.status ?? "none";
      if (status !== "none") {
        info.status = status as MigrationStatus;
        info.stats = statsOf(raw);
      }
      const rounds = info.stats?.rounds ?? null;
      if (
        status !== lastStatus ||
        rounds !== lastRounds ||
        Date.now() - lastPublished >= PROGRESS_MS
      ) {
        lastStatus = status;
        lastRounds = rounds;
        lastPublished = Date.now();
        if (!ENDED.includes(status)) this.publish(vm, info);
      }
      if (ENDED.includes(status)) {
        if (status !== "completed") info.error = raw["error-desc"] ?? status;
        break;
      }
      await sleep(POLL_MS);
    }
    info.finishedAt = new Date().toISOString();
    this.running.delete(vm.id);
    const { destination } = outgoing;
    if (info.status === "completed" && "incomingId" in destination) {
      // The new process takes the VM's place before anyone sees `completed`.
      const incoming = this.daemon.find(destination.incomingId);
      if (incoming === null) info.error = `${destination.incomingId} was gone at the end`;
      else
        await this.daemon.adoptLocal(vm, incoming).catch((error: unknown) => {
          info.error = `the new process could not take the VM's place: ${messageOf(error)}`;
        });
      this.publish(vm, info);
      this.daemon.logLine(
        `${vm.id}: migration ${info.migrationId} to a new process completed (downtime ${info.stats?.downtimeMs ?? "?"} ms)`,
      );
    } else if (info.status === "completed") {
      // Released first, so whoever sees `completed` finds the id free here again.
      await this.daemon.handOver(vm);
      this.publish(vm, info);
      this.daemon.bus.publish(vm.id, "VM_DELETED", {
        migratedTo: info.destination,
        migrationId: info.migrationId,
      });
      this.daemon.logLine(
        `${vm.id}: migration ${info.migrationId} to ${info.destination} completed (downtime ${info.stats?.downtimeMs ?? "?"} ms)`,
      );
    } else {
      await vm.setMigration(null).catch(() => undefined);
      this.publish(vm, info);
      this.daemon.logLine(
        `${vm.id}: migration ${info.migrationId} to ${info.destination} ${info.status}: ${info.error ?? ""}`,
      );
      await this.abortDestination(destination, vm.id, info.migrationId);
    }
    return { ...info };
  }

  /** The destination drops its half (it may be gone already: that is fine). */
  private async abortDestination(destination: Destination, id: string, migrationId: string) {
    if ("incomingId" in destination) {
      await this.daemon.incoming
        .abort({ id: destination.incomingId, migrationId })
        .catch((error: unknown) => {
          this.daemon.logLine(`${id}: dropping ${destination.incomingId}: ${messageOf(error)}`);
        });
      return;
    }
    const { peer, url } = destination;
    await onPeer(peer, url, (c) => c.migration.abortIncoming.mutate({ id, migrationId })).catch(
      (error: unknown) => {
        this.daemon.logLine(
          `${id}: telling ${url} to drop migration ${migrationId}: ${messageOf(error)}`,
        );
      },
    );
  }

  private publish(vm: ManagedVm, info: MigrationInfo): void {
    this.daemon.bus.publish(vm.id, "VM_MIGRATION", { role: "source", ...info });
  }
}
