// `npm test`: every compiled test of apps/host under node's test runner, unit
// tests (beside the sources, dist/src) first, then host tests (dist/test).
// Prints the spec report, then "N passed, N failed" as the last line; exits
// non-zero on any failure or when no test ran.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "..", "dist");

function findTests(dir) {
  let found = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found = found.concat(findTests(full));
    else if (entry.name.endsWith(".test.js")) found.push(full);
  }
  return found;
}

// Optional filter: `npm test -- qmp` runs the files whose path contains "qmp".
const filters = process.argv.slice(2);
const files = [...findTests(path.join(dist, "src")), ...findTests(path.join(dist, "test"))].filter(
  (file) => filters.length === 0 || filters.some((f) => file.includes(f)),
);
if (files.length === 0) {
  console.log("no test files found (did the build run?)");
  console.log("0 passed, 1 failed");
  process.exit(1);
}

const scratch = mkdtempSync(path.join(tmpdir(), "virga-tests-"));
const summaryFile = path.join(scratch, "summary.txt");
const result = spawnSync(
  process.execPath,
  [
    "--test",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${path.join(here, "summary-reporter.mjs")}`,
    `--test-reporter-destination=${summaryFile}`,
    ...files,
  ],
  { stdio: "inherit" },
);
let summary = "";
try {
  summary = readFileSync(summaryFile, "utf8").trim();
} catch {
  summary = "";
}
rmSync(scratch, { recursive: true, force: true });
const match = /^(\d+) passed, (\d+) failed$/.exec(summary);
if (match === null) {
  console.log(`the test runner ended without a summary (exit ${result.status ?? result.signal})`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const [passed, failed] = [Number(match[1]), Number(match[2])];
console.log(summary);
process.exit(result.status !== 0 || failed > 0 || passed === 0 ? 1 : 0);
