// One schema, two providers. schema.prisma (SQLite) is the only one edited;
// the PostgreSQL schema is derived from it (generated/postgresql.prisma) by
// changing the datasource's provider and url and the client's output, so the
// models cannot drift apart. Each provider keeps its own committed migrations
// folder because their SQL differs.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const prismaDir = dirname(dirname(fileURLToPath(import.meta.url)));

/** Per provider: its schema file and migrations folder (relative to prisma/). */
export const PROVIDERS = {
  sqlite: { schema: "schema.prisma", migrations: "migrations" },
  postgresql: { schema: "generated/postgresql.prisma", migrations: "migrations-postgresql" },
};

function replaceOnce(text, pattern, replacement, what) {
  if (!pattern.test(text)) throw new Error(`schema.prisma: cannot find ${what} to derive from`);
  return text.replace(pattern, replacement);
}

/** The PostgreSQL schema text for the SQLite one. */
export function postgresqlSchema(sqlite) {
  let text = replaceOnce(
    sqlite,
    /(datasource db \{[^}]*?provider\s*=\s*)"sqlite"/,
    '$1"postgresql"',
    "the datasource's sqlite provider",
  );
  // Never connected to: the CLI wants a url, the adapter says where to go.
  text = replaceOnce(
    text,
    /(datasource db \{[^}]*?url\s*=\s*)"[^"]*"/,
    '$1"postgresql://localhost/virga"',
    "the datasource's url",
  );
  text = replaceOnce(
    text,
    /(generator client \{[^}]*?output\s*=\s*)"\.\/generated\/sqlite"/,
    '$1"./postgresql"',
    'the client\'s output "./generated/sqlite"',
  );
  return `// GENERATED from ../schema.prisma by scripts/schemas.mjs: edit that file instead.\n${text}`;
}

/** Writes the derived schema of `provider` (nothing to do for SQLite); returns its path. */
export function writeSchema(provider) {
  const target = join(prismaDir, PROVIDERS[provider].schema);
  if (provider === "postgresql") {
    const text = postgresqlSchema(readFileSync(join(prismaDir, PROVIDERS.sqlite.schema), "utf8"));
    // Rewritten only when it changes: npm start rebuilds the pages when generated/ is newer.
    if (!existsSync(target) || readFileSync(target, "utf8") !== text) {
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, text);
    }
  }
  return target;
}
