// Runs the Prisma CLI from prisma/ (so it reads prisma.config.ts) for one
// provider, with the environment that keeps it quiet and offline.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { prismaDir, writeSchema } from "./schemas.mjs";

export { prismaDir };

/** Runs `prisma <args>` on `provider`'s schema and migrations; returns the exit status. */
export function runPrisma(provider, args, options = {}) {
  writeSchema(provider);
  const cli = createRequire(import.meta.url).resolve("prisma/build/index.js");
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd: prismaDir,
    stdio: options.stdio ?? "inherit",
    encoding: "utf8",
    env: {
      ...process.env,
      ...options.env,
      VIRGA_PRISMA_PROVIDER: provider,
      CHECKPOINT_DISABLE: "1",
      PRISMA_HIDE_UPDATE_MESSAGE: "1",
    },
  });
  if (options.stdio === "pipe") return result;
  return result.status ?? 1;
}
