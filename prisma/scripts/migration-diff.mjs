// What each provider's committed migrations lack against schema.prisma:
// Prisma replays the migrations on a shadow database (a scratch SQLite file;
// a scratch database on a throwaway PostgreSQL server) and diffs the result
// with the schema. Used by `npm run migrate:new` to write new migrations and
// by `npm run migrate:check` (part of `npm test`) to prove none is missing.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runPrisma } from "./prisma-cli.mjs";
import { PROVIDERS, prismaDir } from "./schemas.mjs";
import { startPostgres } from "./postgres-server.mjs";

/** Migration folder names of `provider`, oldest first. */
export function migrationNames(provider) {
  return readdirSync(join(prismaDir, PROVIDERS[provider].migrations), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

/**
 * For each provider, the SQL that would bring its migrations up to the
 * schema ("" when they match). Starts and stops its own PostgreSQL.
 */
export async function pendingMigrations() {
  const scratch = mkdtempSync(join(tmpdir(), "virga-migrations-"));
  const server = await startPostgres();
  try {
    const urls = {
      sqlite: `file:${join(scratch, "shadow.db")}`,
      postgresql: await server.createDatabase("virga_migrations"),
    };
    const pending = {};
    for (const provider of Object.keys(PROVIDERS)) {
      const result = runPrisma(
        provider,
        [
          "migrate",
          "diff",
          "--from-migrations",
          PROVIDERS[provider].migrations,
          "--to-schema-datamodel",
          PROVIDERS[provider].schema,
          "--script",
          "--exit-code",
        ],
        { stdio: "pipe", env: { VIRGA_DATABASE_URL: urls[provider] } },
      );
      // --exit-code: 0 no difference, 2 a difference, anything else an error.
      if (result.status === 0) pending[provider] = "";
      else if (result.status === 2) pending[provider] = result.stdout.trim();
      else
        throw new Error(
          `prisma migrate diff (${provider}) failed (exit ${result.status ?? result.signal}):\n${result.stderr}${result.stdout}`,
        );
    }
    return pending;
  } finally {
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
