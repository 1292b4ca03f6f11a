// Unit tests: no virgad, no /dev/kvm. The routers are called in-process
// through createCaller against a scratch SQLite database migrated with the
// committed migrations.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { scryptSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT } from "./harness";

const scratch = mkdtempSync(path.join(tmpdir(), "virga-portal-unit-"));
process.env.VIRGA_DATABASE_URL = `file:${path.join(scratch, "portal.db")}`;

type Modules = {
  secrets: typeof import("../src/server/auth/secrets");
  roles: typeof import("../src/server/auth/roles");
  hub: typeof import("../src/server/hosts/hub");
  root: typeof import("../src/server/trpc/root");
  openapi: typeof import("../src/server/http/openapi");
  db: typeof import("../src/server/db");
};
let m: Modules;

before(async () => {
  const migrate = spawnSync(
    process.execPath,
    [path.join(REPO_ROOT, "prisma", "scripts", "migrate.mjs")],
    {
      env: process.env,
      encoding: "utf8",
    },
  );
  assert.equal(migrate.status, 0, migrate.stderr);
  m = {
    secrets: await import("../src/server/auth/secrets"),
    roles: await import("../src/server/auth/roles"),
    hub: await import("../src/server/hosts/hub"),
    root: await import("../src/server/trpc/root"),
    openapi: await import("../src/server/http/openapi"),
    db: await import("../src/server/db"),
  };
});

after(async () => {
  await m.db.db().$disconnect();
  rmSync(scratch, { recursive: true, force: true });
});

async function caller(role: "viewer" | "operator" | "admin") {
  const user = await m.db.db().user.upsert({
    where: { username: `unit-${role}` },
    create: { username: `unit-${role}`, role, passwordHash: "x" },
    update: {},
  });
  return m.root.createCaller({
    principal: {
      userId: user.id,
      username: user.username,
      role,
      tokenId: null,
      tokenName: null,
      sessionId: null,
      csrfToken: null,
    },
    ip: null,
    userAgent: null,
    sameOrigin: true,
    setCookies: () => undefined,
    audit: {},
  });
}

const probeConfig = {
  machine: "microvm",
  kernel: "/images/probe.elf",
  append: "console=ttyS0",
  bootEntry: "linux64",
  smp: { cpus: 2, maxCpus: 2, sockets: 1, cores: 2, threads: 1 },
  memoryBytes: 64 * 1024 * 1024,
  drives: [],
  netdevs: [],
  devices: [],
  serial: { kind: "stdio" },
  daemonize: false,
  startPaused: false,
};

describe("passwords", () => {
  it("hash with scrypt and verify; a wrong password fails", async () => {
    const stored = await m.secrets.hashPassword("correct horse");
    assert.match(stored, /^scrypt\$16384\$8\$5\$/, "OWASP's N=2^14, r=8, p=5");
    assert.equal(await m.secrets.verifyPassword("correct horse", stored), true);
    assert.equal(await m.secrets.verifyPassword("wrong horse", stored), false);
    assert.notEqual(await m.secrets.hashPassword("correct horse"), stored, "salted");
    assert.equal(m.secrets.needsRehash(stored), false);
  });

  it("verify a hash of an older, cheaper cost, and ask for it to be made again", async () => {
    const salt = Buffer.alloc(16, 7);
    const key = scryptSync("correct horse", salt, 64, { N: 16384, r: 8, p: 1 });
    const old = ["scrypt", 16384, 8, 1, salt.toString("base64"), key.toString("base64")].join("$");
    assert.equal(await m.secrets.verifyPassword("correct horse", old), true);
    assert.equal(m.secrets.needsRehash(old), true);
  });
});

describe("roles", () => {
  it("order viewer < operator < admin", () => {
    assert.equal(m.roles.hasRole("admin", "operator"), true);
    assert.equal(m.roles.hasRole("viewer", "operator"), false);
    assert.equal(m.roles.weakerOf("admin", "viewer"), "viewer");
  });
});

describe("live hub", () => {
  it("replays what a reconnecting client missed, or asks for a resync", () => {
    const hub = new m.hub.Hub();
    const event = { vmId: "a", hostId: "h", event: "X", data: null, timestamp: "", state: null };
    for (let i = 0; i < 3; i++) hub.publish(event);
    assert.deepEqual(
      hub.since(1)?.map((e) => e.id),
      [2, 3],
    );
    assert.deepEqual(hub.since(3), []);
    for (let i = 0; i < 2100; i++) hub.publish(event);
    assert.equal(hub.since(1), null);
  });
});

describe("definitions router", () => {
  it("stores a config the VMM's schema accepts", async () => {
    const operator = await caller("operator");
    const created = await operator.definitions.create({ name: "unit-probe", config: probeConfig });
    assert.equal(created.config.smp.cores, 2);
    const copy = await operator.definitions.clone({ id: created.id });
    assert.equal(copy.name, "unit-probe copy");
  });

  it("rejects a bad field with its path under config.", async () => {
    const operator = await caller("operator");
    await assert.rejects(
      operator.definitions.create({
        name: "unit-bad",
        config: { ...probeConfig, smp: { ...probeConfig.smp, maxCpus: 3 } },
      }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "BAD_REQUEST");
        assert.match(error.message, /config\.smp/);
        assert.match(error.message, /must equal maxcpus/);
        return true;
      },
    );
  });

  it("refuses a viewer", async () => {
    const viewer = await caller("viewer");
    await assert.rejects(
      viewer.definitions.create({ name: "x", config: probeConfig }),
      /operator role/,
    );
  });

  it("audits each mutation with its result", async () => {
    const entries = await (await caller("admin")).audit.list({ limit: 50 });
    assert.ok(entries.some((e) => e.action === "definitions.create" && e.result === "ok"));
    assert.ok(entries.some((e) => e.action === "definitions.create" && e.result === "error"));
  });
});

describe("OpenAPI document", () => {
  it("describes the gateway and every query and mutation", () => {
    const doc = m.openapi.openApiDocument("http://portal") as { paths: Record<string, unknown> };
    assert.ok("/api/v1/vms/{id}/qmp" in doc.paths);
    assert.ok("/api/trpc/vms.create" in doc.paths);
    assert.ok("/api/trpc/vms.list" in doc.paths);
    assert.ok(!("/api/trpc/vms.watch" in doc.paths), "subscriptions are not plain HTTP calls");
  });
});
