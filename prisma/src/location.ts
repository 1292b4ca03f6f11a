// Which database the portal uses, and where. One rule for the CLI, the portal
// and the tests: VIRGA_DATABASE_URL wins. A `postgresql://` (or `postgres://`)
// URL is a PostgreSQL server; anything else is a SQLite file (`file:/abs.db`
// or a plain path); unset, <repository>/data/portal.db. SQLite paths are made
// absolute here because better-sqlite3 resolves relative ones against the
// process cwd, which is prisma/ for the CLI and the repository root for the
// portal.
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";

export type DatabaseProvider = "sqlite" | "postgresql";

/** The repository root: the nearest folder up from `from` holding prisma/schema.prisma. */
export function repositoryRoot(from: string = process.cwd()): string {
  // Found at run time, never traced by a bundler.
  let dir = resolve(/* turbopackIgnore: true */ from);
  for (;;) {
    if (existsSync(join(/* turbopackIgnore: true */ dir, "prisma", "schema.prisma"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(from);
    dir = parent;
  }
}

export function providerOf(url: string): DatabaseProvider {
  return /^postgres(ql)?:\/\//i.test(url.trim()) ? "postgresql" : "sqlite";
}

/** VIRGA_DATABASE_URL as given, or the default SQLite file as a `file:` URL. */
export function databaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.VIRGA_DATABASE_URL?.trim();
  return configured ? configured : `file:${join(repositoryRoot(), "data", "portal.db")}`;
}

/** Absolute path of the SQLite database file a `file:` URL (or plain path) names. */
export function sqliteFile(url: string): string {
  const path = url.trim().replace(/^file:/, "");
  return isAbsolute(path) ? path : resolve(repositoryRoot(), path);
}
