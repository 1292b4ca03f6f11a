// migrations.*: live migration of a VM from its host to another registered
// host, or to a new virga-vmm process on its own host when that is the
// destination (docs/virgad-api.md, "Live migration"). `start` records a Migration
// row and asks the source's virgad to send the VM to the destination's
// virgad (its URL and token as the portal knows them); the row follows the
// source's VM_MIGRATION events (watcher.ts) and, once completed, the VM's
// row belongs to the destination host. `cancel` stops it (the VM runs on at
// its source). Viewers read, operators migrate and cancel; every mutation
// is audited (trpc.ts).
import { TRPCError } from "@trpc/server";
import type { Host, Migration, Vm } from "@virga/prisma";
import { downtimeLimitMs, maxBandwidth } from "@virga/host/src/daemon/routers/migration.schema";
import type { MigrationInfo } from "@virga/host/src/daemon/router";
import { z } from "zod";
import { db } from "../../db";
import { CredentialError, openCredential } from "../../hosts/credential";
import { applyMigrationInfo, IN_FLIGHT } from "../../migrations/rows";
import { findVm, onHost } from "../../vms/lookup";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

type Row = Migration & { vm: Vm | null; sourceHost: Host; destinationHost: Host };

const include = { vm: true, sourceHost: true, destinationHost: true } as const;

async function findMigration(id: string): Promise<Row> {
  const row = await db().migration.findUnique({ where: { id }, include });
  if (row === null) {
    throw new TRPCError({ code: "NOT_FOUND", message: `id: no migration with id '${id}'` });
  }
  return row;
}

/** The destination as the source virgad must reach it: its token opened, its pinned certificate over https. */
function destinationFor(host: Host) {
  let credential;
  try {
    credential = openCredential(host.token);
  } catch (error) {
    if (!(error instanceof CredentialError)) throw error;
    throw new TRPCError({
      code: "BAD_GATEWAY",
      message: `destinationHostId: host '${host.name}': ${error.message}`,
    });
  }
  return {
    url: host.url,
    token: credential.token,
    ...(credential.pin === null ? {} : { pin: credential.pin }),
  };
}

function publicMigration(row: Row) {
  return {
    id: row.id,
    /** Null once the VM is deleted. */
    vmId: row.vmId,
    vmName: row.vm?.name ?? null,
    sourceHostId: row.sourceHostId,
    sourceHostName: row.sourceHost.name,
    destinationHostId: row.destinationHostId,
    destinationHostName: row.destinationHost.name,
    /** "tcp" to another host, "unix" to a new process on the same one. */
    transport: row.transport,
    status: row.status,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    durationMs: row.finishedAt === null ? null : row.finishedAt.getTime() - row.startedAt.getTime(),
    totalBytes: row.totalBytes === null ? null : Number(row.totalBytes),
    transferredBytes: row.transferredBytes === null ? null : Number(row.transferredBytes),
    downtimeMs: row.downtimeMs,
    error: row.error,
  };
}

async function reread(id: string) {
  return publicMigration(await findMigration(id));
}

export const migrationsRouter = router({
  /** Every migration, newest first (or one VM's). */
  list: viewerProcedure
    .input(z.object({ vmId: z.string().min(1).optional() }).optional())
    .query(async ({ input }) => {
      const rows = await db().migration.findMany({
        where: input?.vmId === undefined ? {} : { vmId: input.vmId },
        include,
        orderBy: { startedAt: "desc" },
        take: 500,
      });
      return rows.map(publicMigration);
    }),

  /** One migration; while it runs, `live` is the source virgad's view with QEMU's figures. */
  get: viewerProcedure.input(z.object({ id: z.string().min(1) })).query(async ({ input }) => {
    const row = await findMigration(input.id);
    let live: MigrationInfo | null = null;
    if (IN_FLIGHT.includes(row.status)) {
      live = await onHost(row.sourceHost, (c) =>
        c.vm.migration.query({ migrationId: row.id }),
      ).catch(() => null);
    }
    return { ...publicMigration(row), live };
  }),

  start: operatorProcedure
    .input(
      z.object({
        vmId: z.string().min(1, "required"),
        destinationHostId: z.string().min(1, "required"),
        downtimeLimitMs: downtimeLimitMs.optional(),
        maxBandwidth: maxBandwidth.optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const vm = await findVm(input.vmId);
      ctx.audit.target = vm.id;
      const destination = await db().host.findUnique({ where: { id: input.destinationHostId } });
      if (destination === null) {
        throw new TRPCError({
          code: "NOT_FOUND",
          message: `destinationHostId: no host with id '${input.destinationHostId}'`,
        });
      }
      // Its own host: the VM moves to a new virga-vmm process there (over a unix socket).
      const local = destination.id === vm.hostId;
      // The row first: the source's events about it may come before virgad's answer.
      const row = await db().migration.create({
        data: {
          vmId: vm.id,
          sourceHostId: vm.hostId,
          destinationHostId: destination.id,
          transport: local ? "unix" : "tcp",
          status: "pending",
        },
      });
      let info: MigrationInfo;
      try {
        info = await onHost(vm.host, (c) =>
          c.vm.migrate.mutate({
            id: vm.hostVmId,
            migrationId: row.id,
            ...(local ? { local: true as const } : { destination: destinationFor(destination) }),
            ...(input.downtimeLimitMs === undefined
              ? {}
              : { downtimeLimitMs: input.downtimeLimitMs }),
            ...(input.maxBandwidth === undefined ? {} : { maxBandwidth: input.maxBandwidth }),
          }),
        );
      } catch (error) {
        // Refused before anything moved: not a migration (the audit log keeps the attempt).
        await db().migration.delete({ where: { id: row.id } });
        throw error;
      }
      await applyMigrationInfo(vm.host, info);
      return reread(row.id);
    }),

  /** Stops a running migration; the VM runs on at its source. Resolves once it has ended. */
  cancel: operatorProcedure
    .input(z.object({ id: z.string().min(1) }))
    .mutation(async ({ ctx, input }) => {
      const row = await findMigration(input.id);
      ctx.audit.target = row.vmId ?? row.id;
      if (!IN_FLIGHT.includes(row.status) || row.vm === null) {
        throw new TRPCError({
          code: "PRECONDITION_FAILED",
          message: `migration '${row.id}' is ${row.status}; only a running one can be cancelled`,
        });
      }
      const hostVmId = row.vm.hostVmId;
      const info = await onHost(row.sourceHost, (c) => c.vm.migrateCancel.mutate({ id: hostVmId }));
      await applyMigrationInfo(row.sourceHost, info);
      return reread(row.id);
    }),
});
