// Applies the committed migrations to the database (VIRGA_DATABASE_URL or
// ./data/portal.db), creating the file on a fresh machine. Offline: Prisma's
// WASM schema engine through the better-sqlite3 adapter. Generates the client
// first if an install skipped it.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { prismaDir, runPrisma } from "./prisma-cli.mjs";

if (!existsSync(join(prismaDir, "generated", "client.ts"))) {
  const status = runPrisma(["generate", "--no-hints"]);
  if (status !== 0) process.exit(status);
}
process.exit(runPrisma(["migrate", "deploy"]));
