// For schema changes: `npm run migrate:dev -w prisma -- --name what_changed`
// diffs schema.prisma against the migrations (on a shadow database) and writes
// a new migration folder to commit.
import { runPrisma } from "./prisma-cli.mjs";

process.exit(runPrisma(["migrate", "dev", ...process.argv.slice(2)]));
