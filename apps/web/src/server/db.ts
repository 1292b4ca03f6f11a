// The Prisma client, created on first use (next build imports modules that
// import this one, and must not open the database). One client per process:
// the custom server and the Next bundle share it through globalThis. Several
// portal processes may share one database (PostgreSQL), so writes that two
// of them can make at once are written to tolerate each other.
import { createPrismaClient, type PrismaClient } from "@virga/prisma";

const store = globalThis as typeof globalThis & { __virgaPrisma?: PrismaClient };

export function db(): PrismaClient {
  store.__virgaPrisma ??= createPrismaClient();
  return store.__virgaPrisma;
}

/** A unique constraint refused the write: another portal (or request) wrote the row first. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "P2002";
}
