// auth.*: sign in and out, who am I, change my password.
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { db } from "../../db";
import { clearedCookies, sessionCookies } from "../../auth/cookies";
import { createSession, endSession } from "../../auth/principal";
import { DUMMY_HASH, hashPassword, needsRehash, verifyPassword } from "../../auth/secrets";
import { recordFailedSignIn, recordSignIn, signInRefusal } from "../../auth/sign-in-throttle";
import { publicProcedure, router, viewerProcedure } from "../trpc";

export const MIN_PASSWORD = 8;

export const authRouter = router({
  me: publicProcedure.query(({ ctx }) =>
    ctx.principal === null
      ? null
      : {
          userId: ctx.principal.userId,
          username: ctx.principal.username,
          role: ctx.principal.role,
          token: ctx.principal.tokenName,
        },
  ),

  signIn: publicProcedure
    .input(z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(256) }))
    .mutation(async ({ ctx, input }) => {
      ctx.audit.actor = input.username;
      ctx.audit.target = input.username;
      if (!ctx.sameOrigin) {
        throw new TRPCError({ code: "FORBIDDEN", message: "sign-in from another site refused" });
      }
      const refusal = await signInRefusal(input.username, ctx.ip);
      if (refusal !== null) throw new TRPCError({ code: "TOO_MANY_REQUESTS", message: refusal });
      const user = await db().user.findUnique({ where: { username: input.username } });
      // Verify against a dummy hash for unknown users, so timing tells nothing.
      const ok = await verifyPassword(input.password, user?.passwordHash ?? DUMMY_HASH);
      if (user === null || !ok) {
        await recordFailedSignIn(input.username, ctx.ip);
        throw new TRPCError({ code: "UNAUTHORIZED", message: "wrong username or password" });
      }
      await recordSignIn(input.username);
      if (needsRehash(user.passwordHash)) {
        await db().user.update({
          where: { id: user.id },
          data: { passwordHash: await hashPassword(input.password) },
        });
      }
      const session = await createSession(user.id, ctx.userAgent);
      ctx.setCookies(sessionCookies(session.secret, session.csrfToken, session.expiresAt));
      return { username: user.username, role: user.role };
    }),

  signOut: viewerProcedure.mutation(async ({ ctx }) => {
    if (ctx.principal.sessionId !== null) await endSession(ctx.principal.sessionId);
    ctx.setCookies(clearedCookies());
    return {};
  }),

  changePassword: viewerProcedure
    .input(
      z.object({
        currentPassword: z.string().min(1),
        newPassword: z.string().min(MIN_PASSWORD, `at least ${MIN_PASSWORD} characters`).max(256),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const user = await db().user.findUniqueOrThrow({ where: { id: ctx.principal.userId } });
      if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
        throw new TRPCError({ code: "BAD_REQUEST", message: "currentPassword: wrong password" });
      }
      await db().user.update({
        where: { id: user.id },
        data: { passwordHash: await hashPassword(input.newPassword) },
      });
      // Whoever else holds a session of this user (a stolen cookie, a
      // forgotten browser) is signed out; this session stays.
      await db().session.deleteMany({
        where: {
          userId: user.id,
          ...(ctx.principal.sessionId === null ? {} : { id: { not: ctx.principal.sessionId } }),
        },
      });
      return {};
    }),
});
