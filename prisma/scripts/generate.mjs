// Generates the Prisma client of each provider into prisma/generated (run by
// npm install): generated/sqlite and generated/postgresql.
import { runPrisma } from "./prisma-cli.mjs";

for (const provider of ["sqlite", "postgresql"]) {
  const status = runPrisma(provider, ["generate", "--no-hints"]);
  if (status !== 0) process.exit(status);
}
