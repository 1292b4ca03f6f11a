// Applies the committed migrations to the database VIRGA_DATABASE_URL names
// (./data/portal.db when unset; a SQLite file is created on a fresh machine,
// a PostgreSQL database must exist). Offline: Prisma's WASM schema engine
// through the provider's driver adapter. Generates the clients first if an
// install skipped it.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { prismaDir, runPrisma } from "./prisma-cli.mjs";

const url = process.env.VIRGA_DATABASE_URL?.trim() ?? "";
const provider = /^postgres(ql)?:\/\//i.test(url) ? "postgresql" : "sqlite";
if (!existsSync(join(prismaDir, "generated", provider, "client.ts"))) {
  const status = runPrisma(provider, ["generate", "--no-hints"]);
  if (status !== 0) process.exit(status);
}
process.exit(runPrisma(provider, ["migrate", "deploy"]));
