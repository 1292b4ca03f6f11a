// `npm run migrate:check -w prisma` (run by `npm test`): fails unless both
// providers' committed migrations have the same names and each, replayed,
// gives exactly schema.prisma. Prints what is missing and how to write it.
import { migrationNames, pendingMigrations } from "./migration-diff.mjs";
import { PROVIDERS } from "./schemas.mjs";

const problems = [];
const [sqliteNames, postgresNames] = [migrationNames("sqlite"), migrationNames("postgresql")];
const only = (a, b) => a.filter((name) => !b.includes(name));
for (const [provider, names] of [
  ["sqlite", only(sqliteNames, postgresNames)],
  ["postgresql", only(postgresNames, sqliteNames)],
]) {
  if (names.length > 0)
    problems.push(`only prisma/${PROVIDERS[provider].migrations} has: ${names.join(", ")}`);
}
for (const [provider, sql] of Object.entries(await pendingMigrations())) {
  if (sql !== "")
    problems.push(
      `prisma/${PROVIDERS[provider].migrations} does not give schema.prisma; it lacks:\n${sql}`,
    );
}
if (problems.length > 0) {
  console.error(problems.join("\n\n"));
  console.error(
    "\nWrite the missing migrations with: npm run migrate:new -w prisma -- --name <what_changed>",
  );
  process.exit(1);
}
console.log(
  `migrate:check: ${sqliteNames.length} migrations, the same for SQLite and PostgreSQL, each giving schema.prisma`,
);
