// tokens.*: API tokens for automation. The secret is shown once, at
// creation; only its SHA-256 is kept. A token acts with its own role, never
// above its owner's.
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { db } from "../../db";
import { TOKEN_PREFIX } from "../../auth/principal";
import { hasRole, roleSchema } from "../../auth/roles";
import { randomSecret, sha256 } from "../../auth/secrets";
import { router, viewerProcedure } from "../trpc";

const publicFields = {
  id: true,
  name: true,
  prefix: true,
  role: true,
  createdAt: true,
  lastUsedAt: true,
  expiresAt: true,
  revokedAt: true,
  user: { select: { username: true } },
} as const;

export const tokensRouter = router({
  /** Your tokens; an admin sees everyone's. */
  list: viewerProcedure.query(({ ctx }) =>
    db().apiToken.findMany({
      where: ctx.principal.role === "admin" ? {} : { userId: ctx.principal.userId },
      select: publicFields,
      orderBy: { createdAt: "desc" },
    }),
  ),

  create: viewerProcedure
    .input(
      z.object({
        name: z.string().trim().min(1, "required").max(64),
        role: roleSchema.optional(),
        expiresInDays: z.number().int().min(1).max(3650).optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const role = input.role ?? ctx.principal.role;
      if (!hasRole(ctx.principal.role, role)) {
        throw new TRPCError({
          code: "FORBIDDEN",
          message: `role: a token cannot have more than your role (${ctx.principal.role})`,
        });
      }
      const token = `${TOKEN_PREFIX}${randomSecret(32)}`;
      const row = await db().apiToken.create({
        data: {
          name: input.name,
          prefix: token.slice(0, TOKEN_PREFIX.length + 6),
          tokenHash: sha256(token),
          role,
          userId: ctx.principal.userId,
          expiresAt:
            input.expiresInDays === undefined
              ? null
              : new Date(Date.now() + input.expiresInDays * 86400_000),
        },
        select: publicFields,
      });
      ctx.audit.target = row.name;
      return { ...row, token };
    }),

  revoke: viewerProcedure
    .input(z.object({ id: z.string().min(1) }))
    .mutation(async ({ ctx, input }) => {
      const row = await db().apiToken.findUnique({ where: { id: input.id } });
      if (row === null || (row.userId !== ctx.principal.userId && ctx.principal.role !== "admin")) {
        throw new TRPCError({ code: "NOT_FOUND", message: `no token with id '${input.id}'` });
      }
      ctx.audit.target = row.name;
      await db().apiToken.update({ where: { id: row.id }, data: { revokedAt: new Date() } });
      return { id: row.id };
    }),
});
