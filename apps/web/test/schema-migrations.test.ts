// The committed migrations of both providers are generated from the one
// schema and kept in step: `npm run migrate:check -w prisma` replays each
// folder on a scratch database (SQLite; PostgreSQL from Debian's packages)
// and diffs the result with schema.prisma. Fails naming the missing SQL and
// how to write it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "./harness";

describe("migrations", () => {
  it("SQLite and PostgreSQL have the same migrations, each giving schema.prisma", () => {
    const check = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, "prisma", "scripts", "migrate-check.mjs")],
      { encoding: "utf8", env: { ...process.env, VIRGA_DATABASE_URL: "" }, timeout: 180_000 },
    );
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    assert.match(check.stdout, /the same for SQLite and PostgreSQL, each giving schema\.prisma/);
  });
});
