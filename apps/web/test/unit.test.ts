// Unit tests: no virgad, no /dev/kvm. The routers are called in-process
// through createCaller against a scratch SQLite database migrated with the
// committed migrations.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { scryptSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { lockSqlite, loopStalls, REPO_ROOT } from "./harness";

const scratch = mkdtempSync(path.join(tmpdir(), "virga-portal-unit-"));
const databaseFile = path.join(scratch, "portal.db");
process.env.VIRGA_DATABASE_URL = `file:${databaseFile}`;
process.env.VIRGA_SECRET_KEY_FILE = path.join(scratch, "secret.key");

type Modules = {
  secrets: typeof import("../src/server/auth/secrets");
  roles: typeof import("../src/server/auth/roles");
  hub: typeof import("../src/server/hosts/hub");
  root: typeof import("../src/server/trpc/root");
  openapi: typeof import("../src/server/http/openapi");
  db: typeof import("../src/server/db");
  credential: typeof import("../src/server/hosts/credential");
  pinnedTls: typeof import("@virga/host/src/daemon/pinned-tls");
  capacity: typeof import("../src/server/hosts/capacity");
  placement: typeof import("../src/server/vms/placement");
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
    credential: await import("../src/server/hosts/credential"),
    pinnedTls: await import("@virga/host/src/daemon/pinned-tls"),
    capacity: await import("../src/server/hosts/capacity"),
    placement: await import("../src/server/vms/placement"),
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

describe("host credentials", () => {
  const token = "a".repeat(32) + "b".repeat(32);

  it("seal under a key file made 0600; open back; refuse a changed byte", () => {
    const credential = { token, scope: "read" as const, pin: null };
    const sealed = m.credential.sealCredential(credential);
    assert.match(sealed, /^v1:[A-Za-z0-9_-]+$/);
    assert.ok(!Buffer.from(sealed.slice(3), "base64url").toString("latin1").includes(token));
    assert.notEqual(m.credential.sealCredential(credential), sealed, "a fresh IV each time");
    assert.deepEqual(m.credential.openCredential(sealed), credential);
    assert.equal(statSync(path.join(scratch, "secret.key")).mode & 0o777, 0o600);
    const raw = Buffer.from(sealed.slice(3), "base64url");
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    assert.throws(
      () => m.credential.openCredential(`v1:${raw.toString("base64url")}`),
      /does not open with this portal's secret key/,
    );
  });

  it("read a token stored in clear by an older portal, scope unknown", () => {
    assert.equal(m.credential.isSealed(token), false);
    assert.deepEqual(m.credential.openCredential(token), { token, scope: null, pin: null });
  });

  it("take a fingerprint with or without colons, in either case", () => {
    const pin = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, "0"));
    const canonical = pin.join(":").toUpperCase();
    assert.equal(m.pinnedTls.normaliseFingerprint(pin.join("")), canonical);
    assert.equal(m.pinnedTls.normaliseFingerprint(` ${pin.join(":")} `), canonical);
    assert.equal(m.pinnedTls.normaliseFingerprint("AB:CD"), null);
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

  it("names its events so that another portal's ids are not taken for its own", () => {
    const [one, two] = [new m.hub.Hub(), new m.hub.Hub()];
    assert.equal(one.idOf(one.streamId(7)), 7);
    assert.equal(two.idOf(one.streamId(7)), null, "another portal's stream id");
    assert.equal(one.idOf("7"), null, "an id without the portal's epoch");
  });
});

describe("placement", () => {
  const GIB = 1024 ** 3;
  const info = (memoryBytes: number, kvm = true) =>
    ({
      hostname: "h",
      cpus: 2,
      memoryBytes,
      kvm: { present: kvm, capabilities: {} },
      version: "0",
      vms: [],
    }) as Parameters<typeof m.capacity.capacityOf>[0];
  const vm = (state: string, memoryBytes: number) =>
    ({ state, config: { memoryBytes } }) as Parameters<typeof m.capacity.capacityOf>[1][number];
  const probe = (name: string, capacity: ReturnType<typeof m.capacity.capacityOf>) => ({
    host: { name },
    info: info(capacity.memoryBytes),
    capacity,
    error: null,
  });

  it("counts the memory of running, paused and starting VMs as held", () => {
    const capacity = m.capacity.capacityOf(info(4 * GIB), [
      vm("running", GIB),
      vm("paused", GIB),
      vm("prelaunch", GIB / 2),
      vm("shutdown", GIB),
      vm("created", GIB),
    ]);
    assert.equal(capacity.committedBytes, 2.5 * GIB);
    assert.equal(capacity.freeBytes, 1.5 * GIB);
    assert.equal(capacity.liveVms, 3);
    assert.equal(capacity.vms, 5);
  });

  it("picks the host with the most free memory, then the one with fewer live VMs", () => {
    const small = probe("a", m.capacity.capacityOf(info(8 * GIB), [vm("running", 4 * GIB)]));
    const large = probe("b", m.capacity.capacityOf(info(8 * GIB), [vm("running", GIB)]));
    assert.equal(m.placement.chooseHost([small, large], GIB).name, "b");
    const busy = probe(
      "c",
      m.capacity.capacityOf(info(9 * GIB), [vm("running", GIB), vm("running", GIB)]),
    );
    assert.equal(m.placement.chooseHost([busy, large], GIB).name, "b");
  });

  it("skips unreachable hosts, hosts without KVM or room, and says why when none is left", () => {
    const down = { host: { name: "down" }, info: null, capacity: null, error: "host 'down': gone" };
    const noKvm = {
      ...probe("nokvm", m.capacity.capacityOf(info(8 * GIB, false), [])),
      info: info(8 * GIB, false),
    };
    const full = probe("full", m.capacity.capacityOf(info(GIB), [vm("running", GIB)]));
    assert.throws(
      () => m.placement.chooseHost([down, noKvm, full], 128 * 1024 * 1024),
      /^TRPCError: hostId: no host can take a VM of 128 MiB: host 'down': gone; 'nokvm' has no KVM; 'full' has 0 MiB free$/,
    );
    assert.throws(() => m.placement.chooseHost([], GIB), /hostId: no host is registered/);
  });
});

describe("one schema, two providers", () => {
  it("derives the PostgreSQL schema by changing only the datasource and the client's output", async () => {
    const { postgresqlSchema } = await import("../../../prisma/scripts/schemas.mjs");
    const sqlite = readFileSync(path.join(REPO_ROOT, "prisma", "schema.prisma"), "utf8");
    const derived = postgresqlSchema(sqlite);
    assert.match(derived, /provider = "postgresql"/);
    assert.match(derived, /output += "\.\/postgresql"/);
    const models = (text: string) => text.slice(text.indexOf("\nmodel "));
    assert.equal(models(derived), models(sqlite));
    assert.throws(() => postgresqlSchema(sqlite.replace('"sqlite"', '"mysql"')), /sqlite provider/);
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

describe("a database locked by another process", () => {
  it("reads on, and a write waits for the lock without stopping the event loop", async () => {
    const operator = await caller("operator");
    const lock = await lockSqlite(databaseFile, 3000);
    const stalls = loopStalls();
    const started = Date.now();
    assert.ok((await operator.definitions.list()).length >= 0);
    const readMs = Date.now() - started;
    const created = await operator.definitions.create({ name: "unit-locked", config: probeConfig });
    const writeMs = Date.now() - started;
    const worstStall = stalls.stop();
    await lock.released;
    assert.equal(created.name, "unit-locked");
    assert.ok(readMs < 500, `a read waited ${readMs} ms`);
    assert.ok(writeMs >= 2500, `the write did not wait for the lock (${writeMs} ms)`);
    // SQLite's own busy wait would hold the thread for the whole 3 s; the margin is for a loaded machine.
    assert.ok(worstStall < 1000, `the event loop stood still for ${worstStall} ms`);
  });

  it("answers a write still locked after the retries: 503, saying why", async () => {
    const operator = await caller("operator");
    const lock = await lockSqlite(databaseFile, 7000);
    const stalls = loopStalls();
    const started = Date.now();
    await assert.rejects(
      operator.definitions.create({ name: "unit-too-long", config: probeConfig }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "SERVICE_UNAVAILABLE");
        assert.equal(error.message, m.db.DATABASE_BUSY);
        assert.match(error.message, /locked by another process \(still after 5 s\)/);
        return true;
      },
    );
    const failedMs = Date.now() - started;
    const worstStall = stalls.stop();
    await lock.released;
    assert.ok(failedMs >= 4500 && failedMs < 6500, `failed after ${failedMs} ms`);
    assert.ok(worstStall < 1000, `the event loop stood still for ${worstStall} ms`);
    assert.equal(
      (await operator.definitions.list()).some((d) => d.name === "unit-too-long"),
      false,
    );
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
