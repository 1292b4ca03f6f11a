// virgad's two credentials. A "read" token may run queries and subscribe
// (VM lists, events, console output) but not change anything or type into a
// console; a "full" token may do everything. Every side effect is a tRPC
// mutation, so the scope check is one rule on the procedure's type (trpc.ts).
import { timingSafeEqual } from "node:crypto";

export const SCOPES = ["read", "full"] as const;
export type Scope = (typeof SCOPES)[number];

export type Tokens = Record<Scope, string>;

function same(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The scope a presented token grants, or null when it is none of virgad's. */
export function scopeOf(given: string | null, tokens: Tokens): Scope | null {
  if (given === null) return null;
  // Both compared every time, so the answer's timing does not tell which one matched.
  const full = same(given, tokens.full);
  const read = same(given, tokens.read);
  return full ? "full" : read ? "read" : null;
}

/** Whether a scope may call a procedure of this type. */
export function scopeAllows(scope: Scope, type: "query" | "mutation" | "subscription"): boolean {
  return scope === "full" || type !== "mutation";
}
