// The Prisma client, created on first use (next build imports modules that
// import this one, and must not open the database). One client per process:
// the custom server and the Next bundle share it through globalThis.
import { createPrismaClient, type PrismaClient } from "@virga/prisma";

const store = globalThis as typeof globalThis & { __virgaPrisma?: PrismaClient };

export function db(): PrismaClient {
  store.__virgaPrisma ??= createPrismaClient();
  return store.__virgaPrisma;
}
