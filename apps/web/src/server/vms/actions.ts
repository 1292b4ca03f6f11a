// What can be done to a VM, shared by every front end (tRPC for the UI and
// scripts, the HTTP QMP gateway, bulk actions): each action goes to the
// VM's virgad, and the row and the live stream are updated from its answer.
import { TRPCError } from "@trpc/server";
import type { Host } from "@virga/prisma";
import { randomBytes } from "node:crypto";
import { rawQmpAccess } from "@virga/host/src/daemon/qmp-allow-list";
import { hasRole, type Role } from "../auth/roles";
import { db, isDatabaseBusy } from "../db";
import { hub } from "../hosts/hub";
import type { VmSummary } from "../hosts/virgad";
import { upsertVm } from "../hosts/vm-rows";
import { parseStoredConfig, parseStoredNics } from "../definitions/config";
import { findHost, findVm, onHost } from "./lookup";
import { placeVm } from "./placement";

export const VM_ACTIONS = ["start", "pause", "resume", "quit", "kill", "delete"] as const;
export type VmAction = (typeof VM_ACTIONS)[number];

/** Tells the browsers a VM's state as virgad answered it. */
function publishState(hostId: string, vmId: string, state: string): void {
  hub().publish({
    vmId,
    hostId,
    event: "PORTAL_SYNC",
    data: { state },
    timestamp: new Date().toISOString(),
    state,
  });
}

/** Stores what virgad answered about a VM and tells the browsers. */
export async function recordVm(host: Host, summary: VmSummary, definitionId?: string | null) {
  const row = await upsertVm(host, summary, definitionId);
  publishState(host.id, row.id, summary.state);
  return row;
}

function slug(name: string): string {
  const base = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return /^[a-z0-9]/.test(base) ? base : `vm-${base}`.replace(/-+$/, "");
}

/**
 * A new VM from a definition, on the host named or else the one placement
 * picks; started unless `start` is false.
 */
export async function createVm(input: {
  definitionId: string;
  hostId?: string | undefined;
  name?: string | undefined;
  start?: boolean | undefined;
  paused?: boolean | undefined;
}) {
  const definition = await db().vmDefinition.findUnique({ where: { id: input.definitionId } });
  if (definition === null) {
    throw new TRPCError({
      code: "NOT_FOUND",
      message: `definitionId: no definition with id '${input.definitionId}'`,
    });
  }
  const config = parseStoredConfig(definition.config);
  const host =
    input.hostId === undefined ? await placeVm(config.memoryBytes) : await findHost(input.hostId);
  const name = input.name ?? definition.name;
  const id = `${slug(name)}-${randomBytes(3).toString("hex")}`;
  let created = await onHost(host, (c) => c.vm.create.mutate({ id, name, config }));
  const nics = parseStoredNics(definition.nics);
  for (const [index, nic] of nics.entries()) {
    try {
      // A q35 VM's NICs go into its free root ports, a microvm's into its NIC slots.
      await onHost<unknown>(host, (c) =>
        config.machine === "q35"
          ? c.vm.attachPciNic.mutate({ id, ...nic })
          : c.vm.attachNic.mutate({ id, ...nic }),
      );
    } catch (error) {
      // A refused create leaves nothing behind (the taps made so far go with the VM).
      await onHost(host, (c) => c.vm.delete.mutate({ id })).catch(() => undefined);
      throw nicError(error, index);
    }
  }
  if (nics.length > 0) created = await onHost(host, (c) => c.vm.get.query({ id }));
  let row = await recordVm(host, created, definition.id);
  if (input.start ?? true) {
    const started = await onHost(host, (c) =>
      c.vm.start.mutate({ id: created.id, paused: input.paused ?? false }),
    );
    row = await recordVm(host, started, definition.id);
  }
  return row;
}

/** virgad's refusal of a definition's NIC, named as the definition's field ("nics.0.bridge: ..."). */
function nicError(error: unknown, index: number): TRPCError {
  const message = error instanceof Error ? error.message : String(error);
  const field = /^(tap|bridge|mac|ifname|slot): /.exec(message);
  const named =
    field === null
      ? `nics.${index}: ${message}`
      : `nics.${index}.${field[1] === "ifname" ? "tap" : field[1]}: ${message.slice(field[0].length)}`;
  return new TRPCError({
    code: error instanceof TRPCError ? error.code : "INTERNAL_SERVER_ERROR",
    message: named,
  });
}

export async function runAction(id: string, action: VmAction) {
  const vm = await findVm(id);
  const target = { id: vm.hostVmId };
  if (action === "delete") {
    await onHost(vm.host, (c) => c.vm.delete.mutate(target));
    await db().vm.deleteMany({ where: { id: vm.id } });
    hub().publish({
      vmId: vm.id,
      hostId: vm.hostId,
      event: "VM_DELETED",
      data: null,
      timestamp: new Date().toISOString(),
      state: null,
    });
    return { id: vm.id, state: "deleted" };
  }
  const summary = await onHost(vm.host, (c) => {
    switch (action) {
      case "start":
        return c.vm.start.mutate(target);
      case "pause":
        return c.vm.pause.mutate(target);
      case "resume":
        return c.vm.resume.mutate(target);
      case "quit":
        return c.vm.quit.mutate(target);
      case "kill":
        return c.vm.kill.mutate(target);
    }
  });
  try {
    const row = await recordVm(vm.host, summary);
    return { id: row.id, state: row.state };
  } catch (error) {
    if (!isDatabaseBusy(error)) throw error;
    // Done on the host, so said so: the watcher stores the events that
    // carry the new state once the database is free.
    publishState(vm.hostId, vm.id, summary.state);
    return { id: vm.id, state: summary.state };
  }
}

/**
 * Raw QMP (the console and the HTTP gateway): only commands in virgad's
 * allow-list, each with its least role. virgad checks the arguments.
 */
export function authorizeQmp(role: Role, execute: string): void {
  const access = rawQmpAccess(execute);
  if (!access.allowed) throw new TRPCError({ code: "FORBIDDEN", message: access.reason });
  if (!hasRole(role, access.rule.role)) {
    throw new TRPCError({
      code: "FORBIDDEN",
      message: `execute: '${execute}' needs the ${access.rule.role} role`,
    });
  }
}

/** Relays one QMP command; the answer is exactly the VM's (`{return}` or `{error}`). */
export async function relayQmp(id: string, execute: string, args?: Record<string, unknown>) {
  const vm = await findVm(id);
  return onHost(vm.host, (c) =>
    c.vm.qmp.mutate({
      id: vm.hostVmId,
      execute,
      ...(args === undefined ? {} : { arguments: args }),
    }),
  );
}
