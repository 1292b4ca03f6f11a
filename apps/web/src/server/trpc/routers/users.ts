// users.*: accounts and their roles (admins only).
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { db } from "../../db";
import { roleSchema } from "../../auth/roles";
import { hashPassword } from "../../auth/secrets";
import { adminProcedure, router } from "../trpc";
import { MIN_PASSWORD } from "./auth";

const username = z
  .string()
  .regex(/^[a-zA-Z0-9_.-]{1,64}$/, "1-64 letters, digits, '_', '.' or '-'");

export const usersRouter = router({
  list: adminProcedure.query(() =>
    db().user.findMany({
      select: { id: true, username: true, role: true, createdAt: true },
      orderBy: { createdAt: "asc" },
    }),
  ),

  create: adminProcedure
    .input(
      z.object({
        username,
        password: z.string().min(MIN_PASSWORD, `at least ${MIN_PASSWORD} characters`).max(256),
        role: roleSchema,
      }),
    )
    .mutation(async ({ input }) => {
      if ((await db().user.findUnique({ where: { username: input.username } })) !== null) {
        throw new TRPCError({
          code: "CONFLICT",
          message: `username: '${input.username}' is taken`,
        });
      }
      const user = await db().user.create({
        data: {
          username: input.username,
          role: input.role,
          passwordHash: await hashPassword(input.password),
        },
      });
      return { id: user.id, username: user.username, role: user.role };
    }),

  setRole: adminProcedure
    .input(z.object({ id: z.string().min(1), role: roleSchema }))
    .mutation(async ({ ctx, input }) => {
      if (input.id === ctx.principal.userId && input.role !== "admin") {
        throw new TRPCError({ code: "BAD_REQUEST", message: "role: you cannot demote yourself" });
      }
      const user = await db().user.update({ where: { id: input.id }, data: { role: input.role } });
      ctx.audit.target = user.username;
      return { id: user.id, role: user.role };
    }),

  delete: adminProcedure
    .input(z.object({ id: z.string().min(1) }))
    .mutation(async ({ ctx, input }) => {
      if (input.id === ctx.principal.userId) {
        throw new TRPCError({ code: "BAD_REQUEST", message: "id: you cannot delete yourself" });
      }
      const user = await db().user.delete({ where: { id: input.id } });
      ctx.audit.target = user.username;
      return { id: user.id };
    }),
});
