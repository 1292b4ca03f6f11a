// tRPC, set up once: the context, the error shape, and the one procedure
// builder every router uses (auth, then DaemonError → TRPCError).
import { initTRPC, TRPCError } from "@trpc/server";
import type { WebSocket } from "ws";
import { ZodError } from "zod";
import { scopeAllows, type Scope } from "./credentials";
import type { Daemon } from "./daemon";
import { DaemonError } from "./errors";
import { describeIssues } from "./vm-input";

export interface Context {
  daemon: Daemon;
  /** What the bearer token grants, null without one (server.ts checks it; createCaller sets it itself). */
  scope: Scope | null;
  /** The websocket carrying this call, so subscriptions can see a client that stopped reading. */
  ws: WebSocket | null;
}

const t = initTRPC.context<Context>().create({
  errorFormatter({ shape, error }) {
    if (!(error.cause instanceof ZodError)) return shape;
    // "slot: must be 0..5", not zod's JSON: the message names the field like every other error.
    return {
      ...shape,
      message: describeIssues(error.cause),
      data: { ...shape.data, zodIssues: error.cause.issues },
    };
  },
});

/** Any error from the daemon, as the TRPCError a client should see. */
export function toTRPCError(error: unknown): TRPCError {
  if (error instanceof TRPCError) return error;
  if (error instanceof DaemonError) {
    return new TRPCError({ code: error.code, message: error.message, cause: error });
  }
  return new TRPCError({
    code: "INTERNAL_SERVER_ERROR",
    message: error instanceof Error ? error.message : String(error),
    cause: error,
  });
}

const requireToken = t.middleware(({ ctx, type, path, next }) => {
  if (ctx.scope === null) {
    throw new TRPCError({ code: "UNAUTHORIZED", message: "missing or invalid bearer token" });
  }
  if (!scopeAllows(ctx.scope, type)) {
    throw new TRPCError({
      code: "FORBIDDEN",
      message: `${path} needs a token of scope 'full'; this token's scope is '${ctx.scope}'`,
    });
  }
  return next({ ctx: { scope: ctx.scope } });
});

const daemonErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof DaemonError) {
    throw toTRPCError(result.error.cause);
  }
  return result;
});

export const router = t.router;
export const mergeRouters = t.mergeRouters;
export const createCallerFactory = t.createCallerFactory;
export const procedure = t.procedure.use(requireToken).use(daemonErrors);
