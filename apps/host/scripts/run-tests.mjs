// `npm test`: every compiled test of apps/host under node's test runner, unit
// tests (beside the sources, dist/src) first, then host tests (dist/test),
// then the portal's unit/API tests and its Playwright suite.
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
if (files.length === 0 && filters.length === 0) {
  console.log("no test files found (did the build run?)");
  console.log("0 passed, 1 failed");
  process.exit(1);
}

let passed = 0;
let failed = 0;
let ok = true;
if (files.length > 0) {
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
  ok = result.status === 0;
  const match = /^(\d+) passed, (\d+) failed$/.exec(summary);
  if (match === null) {
    console.log(`the test runner ended without a summary (exit ${result.status ?? result.signal})`);
    failed += 1;
    ok = false;
  } else {
    passed += Number(match[1]);
    failed += Number(match[2]);
    console.log(`host: ${summary}`);
  }
}
// The portal's own runners (unit + API tests, then Playwright in Chromium),
// each ending with its own "N passed, N failed"; the totals add up here.
const repo = path.join(here, "..", "..", "..");
const portalRunners = [
  ["portal", path.join(repo, "apps", "web", "test", "run.mjs")],
  ["playwright", path.join(repo, "playwright", "run.mjs")],
];
for (const [label, runner] of portalRunners) {
  if (filters.length > 0 && !filters.some((f) => label.includes(f) || runner.includes(f))) continue;
  const run = spawnSync(process.execPath, [runner], {
    cwd: repo,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.stdout.write(run.stdout ?? "");
  const last = (run.stdout ?? "").trim().split("\n").pop() ?? "";
  const counts = /(\d+) passed, (\d+) failed/.exec(last);
  if (counts === null) {
    console.log(`${label}: the runner ended without a summary (exit ${run.status ?? run.signal})`);
    failed += 1;
    ok = false;
    continue;
  }
  passed += Number(counts[1]);
  failed += Number(counts[2]);
  if (run.status !== 0) ok = false;
  console.log(`${label}: ${last}`);
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(!ok || failed > 0 || passed === 0 ? 1 : 0);
