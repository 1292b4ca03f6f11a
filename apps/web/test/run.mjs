// The portal's API tests (node:test, TypeScript through tsx) against a real
// portal, virgad and probe-guest VMs. Builds the pages first if needed (the
// harness starts the portal the way npm start does). Prints the spec report
// and, last, "N passed, N failed".
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const testDir = dirname(fileURLToPath(import.meta.url));
const webDir = dirname(testDir);
const filters = process.argv.slice(2);
const files = readdirSync(testDir)
  .filter((name) => name.endsWith(".test.ts"))
  .filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)))
  .map((name) => join(testDir, name));
const result = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    "--test-concurrency=1",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${join(testDir, "summary-reporter.mjs")}`,
    "--test-reporter-destination=stdout",
    ...files,
  ],
  {
    stdio: "inherit",
    cwd: webDir,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(webDir, "tsconfig.json") },
  },
);
process.exit(result.status ?? 1);
