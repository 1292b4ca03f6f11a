import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { it } from "node:test";
import { VERSION } from "./version";
import { VMM_BINARY } from "./vmm/vmm-binary";

it("VERSION matches apps/host/package.json", () => {
  // dist/src/version.test.js → apps/host/package.json
  const pkg = JSON.parse(
    readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"),
  ) as {
    version: string;
  };
  assert.equal(VERSION, pkg.version);
});

it("virga-vmm -version prints the same version", () => {
  const result = spawnSync(VMM_BINARY, ["-version"], { encoding: "utf8" });
  assert.equal(result.stdout, `virga-vmm ${VERSION}\n`);
});
