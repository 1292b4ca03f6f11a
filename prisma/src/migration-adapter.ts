// The adapter the Prisma CLI uses for migrate (see prisma.config.ts).
import { sqliteAdapter } from "./adapter";
import { databaseUrl, providerOf, sqliteFile, type DatabaseProvider } from "./location";
import { postgresAdapter } from "./postgres-adapter";

/**
 * The WASM schema engine leaves timers behind (60 s; 10 s on PostgreSQL, and
 * node-postgres's pool its 10 s idle timers) that keep `migrate deploy` and
 * `migrate diff` alive after they finish. Timers that long never matter to a
 * CLI run, so they are made not to hold the process open.
 */
function unrefLongTimers(): void {
  const original = globalThis.setTimeout;
  const patched = ((handler: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = original(handler, ms, ...args);
    if ((ms ?? 0) >= 10_000) timer.unref();
    return timer;
  }) as typeof setTimeout;
  globalThis.setTimeout = Object.assign(patched, original);
}

/** The provider the CLI works on: scripts/prisma-cli.mjs says, else the database URL. */
export function migrationProvider(env: NodeJS.ProcessEnv = process.env): DatabaseProvider {
  const named = env.VIRGA_PRISMA_PROVIDER;
  if (named === "sqlite" || named === "postgresql") return named;
  return providerOf(databaseUrl(env));
}

export function migrationAdapter() {
  unrefLongTimers();
  const url = databaseUrl();
  if (migrationProvider() === "postgresql")
    return Promise.resolve(postgresAdapter(url, { migrations: true }));
  return Promise.resolve(sqliteAdapter(sqliteFile(url), { migrations: true }));
}
