// The Prisma client, created on first use (next build imports modules that
// import this one, and must not open the database). One client per process:
// the custom server and the Next bundle share it through globalThis. Several
// portal processes may share one database (PostgreSQL), so writes that two
// of them can make at once are written to tolerate each other.
import { BUSY_RETRY_MS, createPrismaClient, isBusyError, type PrismaClient } from "@virga/prisma";

const store = globalThis as typeof globalThis & { __virgaPrisma?: PrismaClient };

export function db(): PrismaClient {
  store.__virgaPrisma ??= createPrismaClient();
  return store.__virgaPrisma;
}

/** A unique constraint refused the write: another portal (or request) wrote the row first. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "P2002";
}

/** What a caller is told when the database stayed locked beyond the adapter's retries. */
export const DATABASE_BUSY = `the portal's database is locked by another process (still after ${BUSY_RETRY_MS / 1000} s); try again in a moment`;

/** The database stayed locked by another process (SQLite busy), however deep the error wraps it. */
export function isDatabaseBusy(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current != null; depth++) {
    if (isBusyError(current)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** An error's message for a log line: one line, and the plain reason for a locked database. */
export function describeDbError(error: unknown): string {
  if (isDatabaseBusy(error)) return "the database is locked by another process (SQLITE_BUSY)";
  const message = error instanceof Error ? error.message : String(error);
  return message.trim().split("\n").at(-1) ?? message;
}
