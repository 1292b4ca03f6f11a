// definitions.*: VM definitions, each a VmConfig checked with virga-vmm's
// own schema (a bad field comes back as BAD_REQUEST "config.smp.cpus: ...")
// and the NICs virgad attaches to a VM made from it ("nics.0.bridge: ...").
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import type { VmDefinition } from "@virga/prisma";
import { db } from "../../db";
import {
  parseStoredConfig,
  parseStoredNics,
  validateConfig,
  validateNics,
} from "../../definitions/config";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

const name = z
  .string()
  .trim()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9 _.-]{0,63}$/, "1-64 letters, digits, spaces, '_', '.' or '-'");
const description = z.string().max(1000);

function publicDefinition(row: VmDefinition) {
  return { ...row, config: parseStoredConfig(row.config), nics: parseStoredNics(row.nics) };
}

async function byId(id: string): Promise<VmDefinition> {
  const row = await db().vmDefinition.findUnique({ where: { id } });
  if (row === null)
    throw new TRPCError({ code: "NOT_FOUND", message: `no definition with id '${id}'` });
  return row;
}

async function assertFreeName(wanted: string, except?: string): Promise<void> {
  const other = await db().vmDefinition.findUnique({ where: { name: wanted } });
  if (other !== null && other.id !== except) {
    throw new TRPCError({ code: "CONFLICT", message: `name: a definition '${wanted}' exists` });
  }
}

export const definitionsRouter = router({
  list: viewerProcedure.query(async () =>
    (await db().vmDefinition.findMany({ orderBy: { name: "asc" } })).map(publicDefinition),
  ),

  get: viewerProcedure
    .input(z.object({ id: z.string().min(1) }))
    .query(async ({ input }) => publicDefinition(await byId(input.id))),

  create: operatorProcedure
    .input(
      z.object({
        name,
        description: description.optional(),
        config: z.unknown(),
        nics: z.unknown().optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const config = validateConfig(input.config);
      const nics = validateNics(input.nics ?? [], config);
      await assertFreeName(input.name);
      const row = await db().vmDefinition.create({
        data: {
          name: input.name,
          description: input.description ?? "",
          config: JSON.stringify(config),
          nics: JSON.stringify(nics),
          createdById: ctx.principal.userId,
        },
      });
      return publicDefinition(row);
    }),

  update: operatorProcedure
    .input(
      z.object({
        id: z.string().min(1),
        name: name.optional(),
        description: description.optional(),
        config: z.unknown().optional(),
        nics: z.unknown().optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const current = await byId(input.id);
      ctx.audit.target = current.name;
      const config = input.config === undefined ? undefined : validateConfig(input.config);
      // A new config may leave fewer NIC slots: the stored NICs are checked against it too.
      const nics =
        input.nics === undefined && config === undefined
          ? undefined
          : validateNics(
              input.nics ?? parseStoredNics(current.nics),
              config ?? parseStoredConfig(current.config),
            );
      if (input.name !== undefined) await assertFreeName(input.name, current.id);
      const row = await db().vmDefinition.update({
        where: { id: current.id },
        data: {
          ...(input.name === undefined ? {} : { name: input.name }),
          ...(input.description === undefined ? {} : { description: input.description }),
          ...(config === undefined ? {} : { config: JSON.stringify(config) }),
          ...(nics === undefined ? {} : { nics: JSON.stringify(nics) }),
        },
      });
      return publicDefinition(row);
    }),

  clone: operatorProcedure
    .input(z.object({ id: z.string().min(1), name: name.optional() }))
    .mutation(async ({ ctx, input }) => {
      const source = await byId(input.id);
      let cloneName = input.name;
      if (cloneName === undefined) {
        for (let n = 1; ; n++) {
          const candidate = `${source.name} copy${n === 1 ? "" : ` ${n}`}`.slice(0, 64);
          if ((await db().vmDefinition.findUnique({ where: { name: candidate } })) === null) {
            cloneName = candidate;
            break;
          }
        }
      }
      await assertFreeName(cloneName);
      ctx.audit.target = source.name;
      const row = await db().vmDefinition.create({
        data: {
          name: cloneName,
          description: source.description,
          config: source.config,
          nics: source.nics,
          createdById: ctx.principal.userId,
        },
      });
      return publicDefinition(row);
    }),

  delete: operatorProcedure
    .input(z.object({ id: z.string().min(1) }))
    .mutation(async ({ ctx, input }) => {
      const row = await byId(input.id);
      ctx.audit.target = row.name;
      await db().vmDefinition.delete({ where: { id: row.id } });
      return { id: row.id };
    }),
});
