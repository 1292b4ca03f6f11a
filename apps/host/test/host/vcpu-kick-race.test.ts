// A vCPU paused and resumed 300 times while its guest exits thousands of
// times a second, under ThreadSanitizer (native/fuzz/vcpu_kick_race.cc):
// the thread that asks and the vCPU thread both write the vCPU's shared
// run page (immediate_exit), so those writes must be atomic or TSan
// reports a data race (exit 66, report on stderr).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { nativeDir } from "../support/paths";

test("a vCPU paused and resumed while it runs shows ThreadSanitizer no data race", () => {
  assert.ok(existsSync("/dev/kvm"), "/dev/kvm not present: host tests need KVM");
  const clang = spawnSync("clang++", ["--version"]);
  assert.ok(
    clang.error === undefined && clang.status === 0,
    "clang++ is missing (apt-get install clang libclang-rt-14-dev; `npm install` does it as root)",
  );
  execFileSync("make", ["-s", "-j2", "-C", path.join(nativeDir, "fuzz"), "race"], {
    stdio: "inherit",
  });
  const run = spawnSync(path.join(nativeDir, "build", "race", "vcpu_kick_race"), [], {
    encoding: "utf8",
  });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^[1-9]\d* port exits$/m, "the guest never ran");
});
