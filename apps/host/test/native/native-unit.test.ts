// Runs the C++ unit tests of native/ (devices, virtqueues, boot structures;
// no KVM needed), one node:test case per C++ test so each is counted.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { nativeDir } from "../support/paths";

const binary = path.join(nativeDir, "build", "unit", "native_unit_tests");

execFileSync("make", ["-s", "-C", path.join(nativeDir, "test")], { stdio: "inherit" });
const names = execFileSync(binary, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean);

test("native unit tests are present", () => {
  assert.ok(names.length > 0, "the native unit test binary lists no tests");
});

for (const name of names) {
  test(`native: ${name}`, () => {
    const run = spawnSync(binary, ["--run", name], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });
}
