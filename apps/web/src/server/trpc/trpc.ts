// tRPC, set up once: the context every front end builds, the error shape
// (a bad input names its field; why a host is unreachable only for admins),
// and the procedures by role. Every mutation
// is audited here, whichever router it is in.
import { initTRPC, TRPCError } from "@trpc/server";
import { ZodError } from "zod";
import { audit, viaOf } from "../audit";
import { DATABASE_BUSY, isDatabaseBusy } from "../db";
import type { Principal } from "../auth/principal";
import { hasRole, type Role } from "../auth/roles";
import { messageFor } from "../hosts/unreachable";

export interface Context {
  principal: Principal | null;
  ip: string | null;
  userAgent: string | null;
  /** Whether the request came with an Origin of this server (or none). */
  sameOrigin: boolean;
  /** Adds Set-Cookie headers to the response (sign-in, sign-out). */
  setCookies: (cookies: string[]) => void;
  /** Filled by handlers: what the audit entry names as target and actor. */
  audit: { target?: string | null; actor?: string };
}

/**
 * A zod error from either copy of zod: inputs shared with virgad (apps/host,
 * CommonJS) are checked by zod's CJS build, whose ZodError is another class.
 */
export function isZodError(error: unknown): error is ZodError {
  return (
    error instanceof ZodError ||
    (error instanceof Error && error.name === "ZodError" && "issues" in error)
  );
}

/** "field.path: message" for each issue. */
export function describeZodIssues(error: ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "input"}: ${issue.message}`)
    .join("; ");
}

const t = initTRPC.context<Context>().create({
  sse: {
    ping: { enabled: true, intervalMs: 15_000 },
    client: { reconnectAfterInactivityMs: 40_000 },
  },
  errorFormatter({ shape, error, ctx }) {
    const message = messageFor(error, ctx?.principal?.role);
    if (message !== error.message) return { ...shape, message };
    if (isZodError(error.cause)) {
      return {
        ...shape,
        message: describeZodIssues(error.cause),
        data: {
          ...shape.data,
          fields: error.cause.issues.map((issue) => ({
            path: issue.path.join("."),
            message: issue.message,
          })),
        },
      };
    }
    return shape;
  },
});

export const router = t.router;
export const mergeRouters = t.mergeRouters;
export const createCallerFactory = t.createCallerFactory;
export const middleware = t.middleware;

const audited = t.middleware(async ({ ctx, type, path, next, getRawInput }) => {
  if (type !== "mutation") return next();
  const result = await next();
  let input: unknown;
  try {
    input = await getRawInput();
  } catch {
    input = undefined;
  }
  const fromInput =
    typeof input === "object" && input !== null
      ? ((input as { id?: unknown; name?: unknown }).id ?? (input as { name?: unknown }).name)
      : undefined;
  const recorded = audit({
    principal: ctx.principal,
    actor: ctx.audit.actor,
    action: path,
    target: ctx.audit.target ?? (typeof fromInput === "string" ? fromInput : null),
    input,
    via: viaOf(ctx.principal),
    ip: ctx.ip,
    ok: result.ok,
    error: result.ok ? null : result.error.message,
  });
  // A database that refused the call's own write would hold its answer up as
  // long again: the entry is written when it can be (audit() logs a failure).
  if (result.ok || result.error.code !== "SERVICE_UNAVAILABLE") await recorded;
  return result;
});

/**
 * A database still locked by another process after the adapter's retries
 * (SQLite busy) is the service being unavailable for a moment, said so, not
 * an internal error.
 */
const databaseBusy = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && isDatabaseBusy(result.error.cause)) {
    throw new TRPCError({
      code: "SERVICE_UNAVAILABLE",
      message: DATABASE_BUSY,
      cause: result.error,
    });
  }
  return result;
});

export const publicProcedure = t.procedure.use(audited).use(databaseBusy);

function requireRole(needed: Role) {
  return t.middleware(({ ctx, next }) => {
    const principal = ctx.principal;
    if (principal === null) {
      throw new TRPCError({ code: "UNAUTHORIZED", message: "sign in or send an API token" });
    }
    if (!hasRole(principal.role, needed)) {
      throw new TRPCError({
        code: "FORBIDDEN",
        message: `needs the ${needed} role (you are ${principal.role})`,
      });
    }
    return next({ ctx: { ...ctx, principal } });
  });
}

export const viewerProcedure = publicProcedure.use(requireRole("viewer"));
export const operatorProcedure = publicProcedure.use(requireRole("operator"));
export const adminProcedure = publicProcedure.use(requireRole("admin"));
