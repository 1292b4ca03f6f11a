// After editing schema.prisma: `npm run migrate:new -w prisma -- --name what_changed`
// writes the migration of each provider that needs one, under the same name
// (migrations/<UTC time>_<name>/ for SQLite, migrations-postgresql/... for
// PostgreSQL). Review the SQL (data fixes go above Prisma's statements) and
// commit both.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pendingMigrations } from "./migration-diff.mjs";
import { PROVIDERS, prismaDir } from "./schemas.mjs";

const { values } = parseArgs({ options: { name: { type: "string" } } });
if (!values.name || !/^[a-z0-9_]+$/.test(values.name)) {
  console.error("migrate:new: --name <what_changed> (lower case, digits and '_') is required");
  process.exit(2);
}
const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
const pending = await pendingMigrations();
let written = 0;
for (const [provider, sql] of Object.entries(pending)) {
  if (sql === "") {
    console.log(`migrate:new: ${provider}: the migrations already match schema.prisma`);
    continue;
  }
  const dir = join(prismaDir, PROVIDERS[provider].migrations, `${stamp}_${values.name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "migration.sql"), `${sql}\n`);
  console.log(`migrate:new: ${provider}: wrote ${dir}/migration.sql`);
  written++;
}
if (written === 1) {
  console.log("migrate:new: only one provider needed a migration: check the other's history");
}
