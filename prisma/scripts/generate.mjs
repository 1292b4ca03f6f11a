// Generates the Prisma client into prisma/generated (run by npm install).
import { runPrisma } from "./prisma-cli.mjs";

process.exit(runPrisma(["generate", "--no-hints"]));
