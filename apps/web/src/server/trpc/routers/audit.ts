// audit.*: the audit log, newest first, filterable (operators and admins).
import { z } from "zod";
import { db } from "../../db";
import { operatorProcedure, router } from "../trpc";

export const auditRouter = router({
  list: operatorProcedure
    .input(
      z
        .object({
          limit: z.number().int().min(1).max(500).optional(),
          /** Entries older than this id (paging). */
          before: z.number().int().optional(),
          action: z.string().optional(),
          target: z.string().optional(),
        })
        .optional(),
    )
    .query(({ input }) =>
      db().auditLog.findMany({
        where: {
          ...(input?.before === undefined ? {} : { id: { lt: input.before } }),
          ...(input?.action ? { action: { contains: input.action } } : {}),
          ...(input?.target ? { target: { contains: input.target } } : {}),
        },
        orderBy: { id: "desc" },
        take: input?.limit ?? 100,
      }),
    ),
});
