// The same C++ unit tests as native-unit.test.ts, built with Debian's clang
// under AddressSanitizer and UndefinedBehaviorSanitizer (native/fuzz/Makefile,
// target unit): a sanitizer report aborts the test that caused it.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { nativeDir } from "../support/paths";

const binary = path.join(nativeDir, "build", "sanitize", "native_unit_tests");
const clang = spawnSync("clang++", ["--version"]);
const clangMissing = clang.error !== undefined || clang.status !== 0;

if (clangMissing) {
  test("native unit tests under ASan+UBSan", () => {
    assert.fail("clang++ is missing (apt-get install clang libclang-rt-14-dev; `npm install` does it as root)");
  });
} else {
  execFileSync("make", ["-s", "-j2", "-C", path.join(nativeDir, "fuzz"), "unit"], { stdio: "inherit" });
  const names = execFileSync(binary, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean);

  test("native unit tests under ASan+UBSan are present", () => {
    assert.ok(names.length > 0, "the sanitized unit test binary lists no tests");
  });

  for (const name of names) {
    test(`native (ASan+UBSan): ${name}`, () => {
      const run = spawnSync(binary, ["--run", name], {
        encoding: "utf8",
        env: { ...process.env, ASAN_OPTIONS: "detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS: "print_stacktrace=1" },
      });
      assert.equal(run.status, 0, run.stdout + run.stderr);
    });
  }
}
