import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { it } from "node:test";
import { VERSION } from "./version";

it("VERSION matches apps/host/package.json", () => {
  // dist/src/version.test.js → apps/host/package.json
  const pkg = JSON.parse(
    readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"),
  ) as {
    version: string;
  };
  assert.equal(VERSION, pkg.version);
});
