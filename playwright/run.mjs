// Runs the end-to-end tests: checks for Debian's Chromium, builds the portal
// if needed (via the harness), runs Playwright, then prints
// "N passed, N failed" from its JSON report as the closing line.
// Artifacts (screenshots, traces, HTML report) stay in playwright/artifacts/.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const chromium = process.env.VIRGA_CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(chromium)) {
  console.error(`playwright: ${chromium} missing: apt-get install -y chromium`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const artifacts = join(here, "artifacts");
rmSync(artifacts, { recursive: true, force: true });
mkdirSync(join(artifacts, "screenshots"), { recursive: true });

const cli = createRequire(import.meta.url).resolve("@playwright/test/cli");
const result = spawnSync(
  process.execPath,
  [cli, "test", "-c", join(here, "playwright.config.ts"), ...process.argv.slice(2)],
  {
    cwd: here,
    stdio: "inherit",
    env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: "1", NEXT_TELEMETRY_DISABLED: "1" },
  },
);

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const report = JSON.parse(readFileSync(join(artifacts, "results.json"), "utf8"));
  passed = (report.stats?.expected ?? 0) + (report.stats?.flaky ?? 0);
  failed = report.stats?.unexpected ?? 0;
  skipped = report.stats?.skipped ?? 0;
} catch {
  failed = Math.max(failed, 1);
}
if (result.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
