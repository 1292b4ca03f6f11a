// Where the portal's SQLite file lives. One rule for the CLI, the portal and
// the tests: VIRGA_DATABASE_URL ("file:/abs/path.db" or a plain path) wins;
// otherwise <repository>/data/portal.db. Paths are made absolute here because
// better-sqlite3 resolves relative ones against the process cwd, which is
// prisma/ for the CLI and the repository root for the portal.
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";

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

/** Absolute path of the SQLite database file. */
export function databaseFile(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.VIRGA_DATABASE_URL?.trim();
  if (configured) {
    const path = configured.replace(/^file:/, "");
    return isAbsolute(path) ? path : resolve(repositoryRoot(), path);
  }
  return join(repositoryRoot(), "data", "portal.db");
}
