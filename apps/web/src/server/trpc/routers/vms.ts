// vms.*: VM instances on hosts — list with live state, create from a
// definition on a chosen host, lifecycle actions (one or a selection),
// topology, QMP, the events timeline and a resumable live stream.
import { tracked, TRPCError } from "@trpc/server";
import { z } from "zod";
import { db } from "../../db";
import { hostHealth } from "../../hosts/health";
import { hub, type PortalEvent } from "../../hosts/hub";
import { HostUnreachableError, messageFor } from "../../hosts/unreachable";
import { authorizeQmp, createVm, relayQmp, runAction, VM_ACTIONS } from "../../vms/actions";
import { findVm, onHost } from "../../vms/lookup";
import { parseStoredConfig } from "../../definitions/config";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

const vmId = z.object({ id: z.string().min(1) });

export const qmpCommandInput = z.object({
  execute: z.string().min(1, "required").max(128),
  arguments: z.record(z.unknown()).optional(),
});

export type WatchMessage = { kind: "event"; event: PortalEvent } | { kind: "resync" };

export const vmsRouter = router({
  list: viewerProcedure.query(async () => {
    const rows = await db().vm.findMany({
      include: { host: { select: { name: true } }, definition: { select: { name: true } } },
      orderBy: { createdAt: "desc" },
    });
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      state: row.state,
      pid: row.pid,
      hostId: row.hostId,
      hostName: row.host.name,
      definitionId: row.definitionId,
      definitionName: row.definition?.name ?? null,
      clonedFrom: row.clonedFrom,
      createdAt: row.createdAt,
      startedAt: row.startedAt,
      stoppedAt: row.stoppedAt,
      /** Set while the portal cannot reach the VM's host: `state` is then the last one seen. */
      hostStale: hostHealth().staleness(row.hostId),
    }));
  }),

  /** One VM: the stored row and, when its host answers, virgad's live summary. */
  get: viewerProcedure.input(vmId).query(async ({ ctx, input }) => {
    const vm = await findVm(input.id);
    let live = null;
    let hostError: string | null = null;
    let hostStale = hostHealth().staleness(vm.hostId);
    const lost = hostHealth().of(vm.hostId);
    if (lost !== null) {
      // Not asked again (an unanswered call takes its full timeout): the watcher says when it is back.
      hostError = messageFor(
        new HostUnreachableError(vm.host.name, lost.error),
        ctx.principal.role,
      );
    } else {
      try {
        live = await onHost(vm.host, (c) => c.vm.get.query({ id: vm.hostVmId }));
      } catch (error) {
        hostError =
          error instanceof TRPCError ? messageFor(error, ctx.principal.role) : String(error);
        if (error instanceof HostUnreachableError) {
          hostStale = {
            since: new Date().toISOString(),
            lastSeenAt: vm.host.lastSeenAt?.toISOString() ?? null,
          };
        }
      }
    }
    return {
      id: vm.id,
      name: vm.name,
      state: live?.state ?? vm.state,
      pid: live?.pid ?? vm.pid,
      hostId: vm.hostId,
      hostName: vm.host.name,
      hostVmId: vm.hostVmId,
      definitionId: vm.definitionId,
      clonedFrom: vm.clonedFrom,
      config: live?.config ?? parseStoredConfig(vm.config),
      createdAt: vm.createdAt,
      startedAt: vm.startedAt,
      exit: live?.exit ?? null,
      hostError,
      /** Set when the host did not answer: `state` is the last one the portal saw. */
      hostStale,
    };
  }),

  create: operatorProcedure
    .input(
      z.object({
        definitionId: z.string().min(1, "required"),
        /** Omitted: the host with the most free memory (vms/placement.ts). */
        hostId: z.string().min(1, "required").optional(),
        name: z
          .string()
          .trim()
          .regex(
            /^[a-zA-Z0-9][a-zA-Z0-9 _.-]{0,63}$/,
            "1-64 letters, digits, spaces, '_', '.' or '-'",
          )
          .optional(),
        start: z.boolean().optional(),
        paused: z.boolean().optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const row = await createVm(input);
      ctx.audit.target = row.id;
      return { id: row.id, name: row.name, state: row.state, hostId: row.hostId };
    }),

  start: operatorProcedure.input(vmId).mutation(({ input }) => runAction(input.id, "start")),
  pause: operatorProcedure.input(vmId).mutation(({ input }) => runAction(input.id, "pause")),
  resume: operatorProcedure.input(vmId).mutation(({ input }) => runAction(input.id, "resume")),
  quit: operatorProcedure.input(vmId).mutation(({ input }) => runAction(input.id, "quit")),
  kill: operatorProcedure.input(vmId).mutation(({ input }) => runAction(input.id, "kill")),
  delete: operatorProcedure.input(vmId).mutation(({ input }) => runAction(input.id, "delete")),

  /** The same action on a selection; each VM's outcome is reported, none stops the rest. */
  bulk: operatorProcedure
    .input(
      z.object({
        ids: z.array(z.string().min(1)).min(1, "select at least one VM").max(200),
        action: z.enum(VM_ACTIONS),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      ctx.audit.target = input.ids.join(",");
      const results = [];
      for (const id of input.ids) {
        try {
          const outcome = await runAction(id, input.action);
          results.push({ ok: true as const, id: outcome.id, state: outcome.state });
        } catch (error) {
          results.push({
            id,
            ok: false as const,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      }
      return results;
    }),

  /** vCPU topology: query-cpus and query-hotpluggable-cpus. */
  cpus: viewerProcedure.input(vmId).query(async ({ input }) => {
    const vm = await findVm(input.id);
    return onHost(vm.host, (c) => c.vm.cpus.query({ id: vm.hostVmId }));
  }),

  /** A raw QMP command from the allow-list; the answer is exactly the VM's. */
  qmp: viewerProcedure.input(vmId.merge(qmpCommandInput)).mutation(async ({ ctx, input }) => {
    authorizeQmp(ctx.principal.role, input.execute);
    return relayQmp(input.id, input.execute, input.arguments);
  }),

  consoleInput: operatorProcedure
    .input(
      vmId.extend({
        data: z
          .string()
          .min(1)
          .max(64 * 1024),
      }),
    )
    .mutation(async ({ input }) => {
      const vm = await findVm(input.id);
      await onHost(vm.host, (c) => c.vm.consoleInput.mutate({ id: vm.hostVmId, data: input.data }));
      return {};
    }),

  /** The events timeline of one VM, newest first. */
  events: viewerProcedure
    .input(vmId.extend({ limit: z.number().int().min(1).max(1000).optional() }))
    .query(async ({ input }) => {
      const rows = await db().event.findMany({
        where: { vmId: input.id },
        orderBy: { id: "desc" },
        take: input.limit ?? 200,
      });
      return rows.map((row) => ({
        id: row.id,
        seq: row.seq,
        event: row.event,
        data: JSON.parse(row.data) as unknown,
        timestamp: row.timestamp,
      }));
    }),

  /**
   * Live changes of every VM. Resumable: a client that reconnects with the
   * last id it saw gets what it missed, or `resync` if that is no longer kept.
   */
  watch: viewerProcedure
    .input(z.object({ lastEventId: z.string().nullish() }).optional())
    .subscription(async function* ({ input, signal }) {
      const live = hub();
      const queue: PortalEvent[] = [];
      let wake: (() => void) | null = null;
      const off = live.on((event) => {
        queue.push(event);
        wake?.();
      });
      const aborted = new Promise<void>((resolve) => {
        signal?.addEventListener(
          "abort",
          () => {
            resolve();
          },
          { once: true },
        );
      });
      try {
        let lastSent = live.lastId;
        if (input?.lastEventId != null) {
          const from = live.idOf(input.lastEventId);
          const missed = from === null ? null : live.since(from);
          if (missed === null) {
            yield tracked(live.streamId(lastSent), { kind: "resync" } satisfies WatchMessage);
          } else {
            for (const event of missed) {
              yield tracked(live.streamId(event.id), {
                kind: "event",
                event,
              } satisfies WatchMessage);
            }
          }
        }
        while (!signal?.aborted) {
          const event = queue.shift();
          if (event === undefined) {
            await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
            wake = null;
            continue;
          }
          if (event.id <= lastSent) continue;
          lastSent = event.id;
          yield tracked(live.streamId(event.id), { kind: "event", event } satisfies WatchMessage);
        }
      } finally {
        off();
      }
    }),
});
