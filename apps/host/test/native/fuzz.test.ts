// Each libFuzzer harness of native/fuzz for a few seconds (npm run fuzz's
// short form): every input of the corpus in the repository is replayed,
// including the regression inputs of crashes already fixed, then new ones
// are tried. A crash fails the test with the sanitizer's report and the
// input that caused it (path, base64, the command that replays it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { repoRoot } from "../support/paths";

const script = path.join(repoRoot, "apps", "host", "scripts", "fuzz.mjs");
const seconds = process.env.VIRGA_FUZZ_TEST_SECONDS ?? "4";

const build = spawnSync(process.execPath, [script, "--build-only"], { encoding: "utf8" });
const harnesses =
  build.status === 0
    ? spawnSync("make", ["-s", "-C", path.join(repoRoot, "native", "fuzz"), "list"], { encoding: "utf8" })
        .stdout.trim()
        .split(/\s+/)
    : [];

test("the fuzz harnesses build", () => {
  assert.equal(build.status, 0, build.stdout + build.stderr);
  assert.ok(harnesses.length > 0, "native/fuzz lists no harness");
});

for (const name of harnesses) {
  test(`fuzz: ${name} for ${seconds} s finds no crash`, () => {
    const run = spawnSync(process.execPath, [script, "--only", name, "--seconds", seconds, "--fresh"], {
      encoding: "utf8",
    });
    console.log(run.stdout.split("\n")[0]);
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });
}
