// templates.*: snapshot templates and fleets of clones (docs/virgad-api.md,
// "Templates and clones"). A template is taken from a running or paused VM
// on its host ("Save as template"), listed with its source, size and the
// clones made, cloned N at a time (the clones appear in `templates.clones`
// as their host reports them, which is what the progress view polls), and
// deleted. Reads need the viewer role, the rest the operator role; every
// mutation is audited (trpc.ts).
import { TRPCError } from "@trpc/server";
import type { Host, SnapshotTemplate } from "@virga/prisma";
import {
  cloneInput,
  TEMPLATE_NAME,
  TEMPLATE_NAME_RULE,
} from "@virga/host/src/daemon/routers/templates.schema";
import { z } from "zod";
import { db } from "../../db";
import { virgad } from "../../hosts/virgad";
import { syncHostTemplates, upsertTemplate } from "../../templates/rows";
import { parseStoredConfig } from "../../definitions/config";
import { recordVm } from "../../vms/actions";
import { findVm, onHost } from "../../vms/lookup";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

const templateId = z.object({ id: z.string().min(1) });

type Row = SnapshotTemplate & { host: Host };

async function findTemplate(id: string): Promise<Row> {
  const row = await db().snapshotTemplate.findUnique({ where: { id }, include: { host: true } });
  if (row === null) {
    throw new TRPCError({ code: "NOT_FOUND", message: `no template with id '${id}'` });
  }
  return row;
}

async function publicTemplate(row: Row) {
  const config = parseStoredConfig(row.config);
  const source =
    row.sourceVmId === null
      ? null
      : await db().vm.findUnique({ where: { id: row.sourceVmId }, select: { id: true } });
  return {
    id: row.id,
    name: row.name,
    hostId: row.hostId,
    hostName: row.host.name,
    path: row.path,
    memoryBytes: Number(row.memoryBytes),
    vcpus: config.smp.cpus,
    disks: config.drives.length,
    nics: config.netdevs.length,
    sizeBytes: Number(row.sizeBytes),
    clonesMade: row.clonesMade,
    /** Null once the source VM is deleted (its name stays). */
    sourceVmId: source?.id ?? null,
    sourceVmName: row.sourceVmName,
    createdAt: row.createdAt,
  };
}

/** The portal's VMs cloned from a template, oldest first. */
async function clonesOf(row: Row, since?: Date) {
  const vms = await db().vm.findMany({
    where: {
      hostId: row.hostId,
      clonedFrom: row.name,
      ...(since === undefined ? {} : { createdAt: { gte: since } }),
    },
    orderBy: [{ createdAt: "asc" }, { id: "asc" }],
  });
  return vms.map((vm) => ({
    id: vm.id,
    name: vm.name,
    state: vm.state,
    createdAt: vm.createdAt,
    startedAt: vm.startedAt,
  }));
}

/** virgad names the template's field `template`; here it is `name`. */
function asNameField(error: unknown): unknown {
  if (error instanceof TRPCError && error.message.startsWith("template: ")) {
    return new TRPCError({
      code: error.code,
      message: `name: ${error.message.slice("template: ".length)}`,
    });
  }
  return error;
}

export const templatesRouter = router({
  /** Every template of every host (synced with the hosts that answer), newest first. */
  list: viewerProcedure.query(async () => {
    await Promise.all((await db().host.findMany()).map((host) => syncHostTemplates(host)));
    const rows = await db().snapshotTemplate.findMany({
      include: { host: true },
      orderBy: { createdAt: "desc" },
    });
    return Promise.all(rows.map(publicTemplate));
  }),

  /** One template and the portal's VMs cloned from it. */
  get: viewerProcedure.input(templateId).query(async ({ input }) => {
    const row = await findTemplate(input.id);
    return { ...(await publicTemplate(row)), clones: await clonesOf(row) };
  }),

  /** The clones of a template created since `since` (ISO): the progress of a clone run. */
  clones: viewerProcedure
    .input(templateId.extend({ since: z.string().datetime().optional() }))
    .query(async ({ input }) => {
      const row = await findTemplate(input.id);
      return clonesOf(row, input.since === undefined ? undefined : new Date(input.since));
    }),

  /** "Save as template": snapshots a running or paused VM (it runs on unless stayPaused). */
  create: operatorProcedure
    .input(
      z.object({
        vmId: z.string().min(1, "required"),
        name: z.string().trim().regex(TEMPLATE_NAME, TEMPLATE_NAME_RULE),
        stayPaused: z.boolean().optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      ctx.audit.target = input.name;
      if ((await db().snapshotTemplate.findUnique({ where: { name: input.name } })) !== null) {
        throw new TRPCError({
          code: "CONFLICT",
          message: `name: a template named '${input.name}' exists already`,
        });
      }
      const vm = await findVm(input.vmId);
      const info = await onHost(vm.host, (c) =>
        c.vm.snapshot.mutate({
          id: vm.hostVmId,
          template: input.name,
          stayPaused: input.stayPaused ?? false,
        }),
      ).catch((error: unknown) => {
        throw asNameField(error);
      });
      const row = await upsertTemplate(vm.host, info);
      return publicTemplate({ ...row, host: vm.host });
    }),

  /**
   * Clones a template `count` times on its host, all started at once; each
   * clone's outcome is reported (with its portal id, for a link).
   */
  clone: operatorProcedure
    .input(cloneInput.omit({ template: true }).extend({ id: z.string().min(1) }))
    .mutation(async ({ ctx, input }) => {
      const row = await findTemplate(input.id);
      ctx.audit.target = row.name;
      const report = await onHost(row.host, (c) =>
        c.vm.clone.mutate({
          template: row.name,
          count: input.count,
          ...(input.namePrefix === undefined ? {} : { namePrefix: input.namePrefix }),
          ...(input.overrides === undefined ? {} : { overrides: input.overrides }),
        }),
      );
      const clones = [];
      for (const clone of report.clones) {
        let id: string | null = null;
        if (clone.state !== null) {
          const summary = await virgad(row.host)
            .vm.get.query({ id: clone.id })
            .catch(() => null);
          if (summary !== null) id = (await recordVm(row.host, summary)).id;
        }
        clones.push({ ...clone, hostVmId: clone.id, id });
      }
      await syncHostTemplates(row.host);
      return { ...report, clones };
    }),

  /** Deletes a template on its host (refused while clones are being started from it). */
  delete: operatorProcedure.input(templateId).mutation(async ({ ctx, input }) => {
    const row = await findTemplate(input.id);
    ctx.audit.target = row.name;
    try {
      await onHost(row.host, (c) => c.template.delete.mutate({ name: row.name }));
    } catch (error) {
      // Gone from the host already: only the record is left to remove.
      if (!(error instanceof TRPCError && error.code === "NOT_FOUND")) throw error;
    }
    await db().snapshotTemplate.deleteMany({ where: { id: row.id } });
    return { id: row.id, name: row.name };
  }),
});
