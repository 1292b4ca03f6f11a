// The adapter the Prisma CLI uses for migrate (see prisma.config.ts).
import { sqliteAdapter } from "./adapter";
import { databaseFile } from "./location";

/**
 * The WASM schema engine leaves a 60 s timer behind that keeps `migrate dev`
 * and `migrate deploy` alive for a minute after they finish. Timers that long
 * never matter to a CLI run, so they are made not to hold the process open.
 */
function unrefLongTimers(): void {
  const original = globalThis.setTimeout;
  const patched = ((handler: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = original(handler, ms, ...args);
    if ((ms ?? 0) >= 30_000) timer.unref();
    return timer;
  }) as typeof setTimeout;
  globalThis.setTimeout = Object.assign(patched, original);
}

export function migrationAdapter() {
  unrefLongTimers();
  return Promise.resolve(sqliteAdapter(databaseFile(), { migrations: true }));
}
