// Runs the Prisma CLI from prisma/ (so it reads prisma.config.ts) with the
// environment that keeps it quiet and offline.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const prismaDir = dirname(dirname(fileURLToPath(import.meta.url)));

export function runPrisma(args, env = {}) {
  const cli = createRequire(import.meta.url).resolve("prisma/build/index.js");
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd: prismaDir,
    stdio: "inherit",
    env: {
      ...process.env,
      ...env,
      CHECKPOINT_DISABLE: "1",
      PRISMA_HIDE_UPDATE_MESSAGE: "1",
    },
  });
  return result.status ?? 1;
}
