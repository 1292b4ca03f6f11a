// Live migration between two virga-vmm processes on this machine's KVM
// (docs/migration.md), with the probe guest writing memory throughout
// (`mem dirty`): the guest carries on at the destination with every page it
// wrote, over unix and tcp, and starts from exactly the source's registers
// and RAM (VIRGA_MIGRATION_DUMP); a cancel, a killed destination or a cut
// connection at any phase leaves the source running and says why; a guest
// that writes faster than the link converges by the round limit.
import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { before, describe, it } from "node:test";
import type { QmpClient } from "../../src/qmp/client";
import { tempDir } from "../support/disk";
import { compareMigrationDumps, describeDifferences } from "../support/migration-dumps";
import { freePort } from "../support/ports";
import {
  connectQmp,
  probeArgs,
  requireKvmHost,
  waitForPath,
  withVmm,
  type VmmProcess,
} from "../support/guest";

const BOOT_MS = 30000;
const TEST = { timeout: 120000 };
const MACHINE = probeArgs({ smp: "2", memory: "256" });

interface MigrationInfo {
  status: string;
  "total-time"?: number;
  downtime?: number;
  "error-desc"?: string;
  "x-virga-converged-by"?: string;
  ram?: { transferred: number; "dirty-sync-count": number; total: number };
}

async function shell(vm: VmmProcess, command: string, answer: RegExp): Promise<RegExpExecArray> {
  vm.send(command);
  const line = (await vm.waitFor(/(?:OK|ERR) [^\r\n]*(?=\r?\n)/, BOOT_MS))[0];
  const match = answer.exec(line);
  assert.ok(match !== null, `'${command}' answered '${line}', expected ${String(answer)}`);
  return match;
}

async function qmpOf(vm: VmmProcess, socket: string): Promise<QmpClient> {
  await waitForPath(socket, vm);
  return connectQmp(socket, vm);
}

async function waitMigration(
  qmp: QmpClient,
  done: (info: MigrationInfo) => boolean,
  timeoutMs = 60000,
): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as MigrationInfo;
    if (done(info)) return info;
    if (Date.now() > deadline) throw new Error(`migration still ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ended = (info: MigrationInfo): boolean =>
  ["completed", "failed", "cancelled"].includes(info.status);

/** The dirty lines a console has shown, with when each was first seen here. */
function watchDirty(vm: VmmProcess): { seen: Map<number, number>; stop: () => void } {
  const seen = new Map<number, number>();
  const timer = setInterval(() => {
    for (const line of vm.serial.lines(/^dirty \d+/)) {
      const n = Number(line.slice(6));
      if (!seen.has(n)) seen.set(n, performance.now());
    }
  }, 2);
  return { seen, stop: () => clearInterval(timer) };
}

describe("live migration", () => {
  before(() => {
    requireKvmHost();
  });

  /** A source at its prompt and a destination waiting on `incoming`, both with QMP. */
  async function withPair(
    incoming: (dir: string) => string,
    body: (
      source: VmmProcess,
      sourceQmp: QmpClient,
      dest: VmmProcess,
      destQmp: QmpClient,
      uri: string,
    ) => Promise<void>,
    destArgs: string[] = MACHINE,
    env?: NodeJS.ProcessEnv,
  ): Promise<void> {
    const tmp = tempDir();
    try {
      const uri = incoming(tmp.dir);
      const sourceSocket = path.join(tmp.dir, "source.sock");
      const destSocket = path.join(tmp.dir, "dest.sock");
      await withVmm(
        [...MACHINE, "-qmp", `unix:${sourceSocket},server,nowait`],
        async (source) => {
          await source.waitFor(/probe> /, BOOT_MS);
          await withVmm(
            [...destArgs, "-qmp", `unix:${destSocket},server,nowait`, "-incoming", uri],
            async (dest) => {
              const sourceQmp = await qmpOf(source, sourceSocket);
              const destQmp = await qmpOf(dest, destSocket);
              try {
                await body(source, sourceQmp, dest, destQmp, uri);
              } finally {
                sourceQmp.close();
                destQmp.close();
              }
            },
            { env },
          );
        },
        { env },
      );
    } finally {
      tmp.cleanup();
    }
  }

  /** Migrates a guest that writes memory, then checks every page at the destination. */
  async function migrateWriting(uri: (dir: string) => string): Promise<void> {
    await withPair(uri, async (source, sourceQmp, dest, destQmp, target) => {
      assert.equal(
        ((await destQmp.execute("query-status")) as { status: string }).status,
        "inmigrate",
      );
      source.send("mem dirty 32 10");
      await source.waitFor(/dirty 5\r?\n/, BOOT_MS);
      const watchSource = watchDirty(source);
      const watchDest = watchDirty(dest);
      try {
        assert.deepEqual(await sourceQmp.execute("migrate", { uri: target }), {});
        const info = await waitMigration(sourceQmp, ended);
        assert.equal(info.status, "completed", JSON.stringify(info));
        const shutdown = await sourceQmp.waitForEvent("SHUTDOWN", BOOT_MS);
        assert.deepEqual(shutdown.data, { guest: false, reason: "migration" });
        assert.deepEqual(await source.waitForExit(BOOT_MS), { code: 0, signal: null });
        await destQmp.waitForEvent("RESUME", BOOT_MS);
        assert.equal(
          ((await destQmp.execute("query-status")) as { status: string }).status,
          "running",
        );
        // The guest's output carries on where the source's stopped.
        const last = Math.max(...watchSource.seen.keys());
        await dest.waitFor(new RegExp(`dirty ${last + 1}\\r?\\n`), BOOT_MS);
        await new Promise((r) => setTimeout(r, 20));
        const gapMs = (watchDest.seen.get(last + 1) ?? 0) - (watchSource.seen.get(last) ?? 0);
        console.log(
          `migration ${target.split(":")[0]}: total ${info["total-time"]} ms, downtime ${info.downtime} ms, ` +
            `${info.ram?.["dirty-sync-count"]} rounds, ${info.ram?.transferred} bytes; output gap ${gapMs.toFixed(0)} ms`,
        );
        // The guest prints every 50 ms of its time; the console and this
        // watcher add a few ms more.
        assert.ok(gapMs < (info.downtime ?? 0) + 50 + 150, `output gap ${gapMs} ms`);
      } finally {
        watchSource.stop();
        watchDest.stop();
      }
      dest.send("x");
      await dest.waitFor(/OK mem dirty pass=\d+ pos=\d+/, BOOT_MS);
      await shell(dest, "mem check", /^OK mem check$/);
    });
  }

  it("migrates over unix while the guest writes: it carries on with every page", TEST, async () => {
    await migrateWriting((dir) => `unix:${path.join(dir, "migration.sock")}`);
  });

  it(
    "the destination starts from exactly the source's registers, MSRs, LAPIC, XSAVE and RAM",
    TEST,
    async () => {
      // Both ends dump what they hold while paused (VIRGA_MIGRATION_DUMP):
      // the source with its last pages sent, the destination before its
      // vCPUs first run.
      const dumps = tempDir();
      try {
        await withPair(
          (dir) => `unix:${path.join(dir, "migration.sock")}`,
          async (source, sourceQmp, dest, destQmp, target) => {
            // FS, GS and KERNEL_GS_BASE each with its own value, as in a
            // kernel stopped in user mode (issue 14's suspect).
            const [bases] = await shell(
              source,
              "bases set",
              /^OK bases fs=\S+ gs=\S+ kernel-gs=\S+$/,
            );
            source.send("mem dirty 32 10");
            await source.waitFor(/dirty 3\r?\n/, BOOT_MS);
            assert.deepEqual(await sourceQmp.execute("migrate", { uri: target }), {});
            const info = await waitMigration(sourceQmp, ended);
            assert.equal(info.status, "completed", JSON.stringify(info));
            await destQmp.waitForEvent("RESUME", BOOT_MS);
            const differences = compareMigrationDumps(
              dumps.dir,
              source.child.pid ?? 0,
              dest.child.pid ?? 0,
            );
            console.log(`migration dumps: ${describeDifferences(differences)}`);
            assert.deepEqual(differences.registers, []);
            assert.deepEqual(differences.pages, []);
            dest.send("x");
            await dest.waitFor(/OK mem dirty pass=\d+ pos=\d+/, BOOT_MS);
            await shell(dest, "bases", new RegExp(`^${bases}$`));
          },
          MACHINE,
          { ...process.env, VIRGA_MIGRATION_DUMP: dumps.dir },
        );
      } finally {
        dumps.cleanup();
      }
    },
  );

  it("migrates over tcp while the guest writes: it carries on with every page", TEST, async () => {
    const port = await freePort();
    await migrateWriting(() => `tcp:127.0.0.1:${port}`);
  });

  it(
    "a guest writing faster than the link converges by the round limit, and says so",
    TEST,
    async () => {
      await withPair(
        (dir) => `unix:${path.join(dir, "migration.sock")}`,
        async (source, sourceQmp, dest, destQmp, uri) => {
          // 1 MiB rewritten at 64 MiB/s over a 16 MiB/s link: every round
          // finds all of it dirty again, never within a 1 ms downtime.
          await sourceQmp.execute("migrate-set-parameters", {
            "downtime-limit": 1,
            "max-bandwidth": 16 << 20,
          });
          assert.deepEqual(await sourceQmp.execute("query-migrate-parameters"), {
            "downtime-limit": 1,
            "max-bandwidth": 16 << 20,
          });
          source.send("mem dirty 1 64");
          await source.waitFor(/dirty 2\r?\n/, BOOT_MS);
          await sourceQmp.execute("migrate", { uri });
          const info = await waitMigration(sourceQmp, ended);
          assert.equal(info.status, "completed", JSON.stringify(info));
          assert.equal(info["x-virga-converged-by"], "round-limit");
          assert.equal(info.ram?.["dirty-sync-count"], 31);
          await destQmp.waitForEvent("RESUME", BOOT_MS);
          dest.send("x");
          await dest.waitFor(/OK mem dirty/, BOOT_MS);
          await shell(dest, "mem check", /^OK mem check$/);
        },
      );
    },
  );

  /** Starts a slow migration of a busy guest; `interrupt` breaks it at the phase `when` says. */
  async function interrupted(
    when: (info: MigrationInfo) => boolean,
    interrupt: (
      sourceQmp: QmpClient,
      dest: VmmProcess,
      proxy: { cut: () => void },
    ) => Promise<void>,
    expect: { status: string; desc?: RegExp },
  ): Promise<void> {
    // The migration goes through a proxy so the connection can be cut.
    const tmp = tempDir();
    const connections: net.Socket[] = [];
    const proxySocket = path.join(tmp.dir, "proxy.sock");
    let target = "";
    const proxy = net.createServer((client) => {
      const upstream = net.connect(target);
      connections.push(client, upstream);
      client.pipe(upstream).pipe(client);
      client.on("error", () => undefined);
      upstream.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => proxy.listen(proxySocket, resolve));
    try {
      await withPair(
        (dir) => {
          target = path.join(dir, "migration.sock");
          return `unix:${target}`;
        },
        async (source, sourceQmp, dest) => {
          // 24 MiB at 8 MiB/s: a bulk copy of ~3 s, then rounds.
          await shell(source, "mem fill 24 5", /OK mem fill/);
          await sourceQmp.execute("migrate-set-parameters", { "max-bandwidth": 8 << 20 });
          source.send("mem dirty 8 16");
          await source.waitFor(/dirty 2\r?\n/, BOOT_MS);
          await sourceQmp.execute("migrate", { uri: `unix:${proxySocket}` });
          await waitMigration(sourceQmp, (info) => when(info) || ended(info));
          await interrupt(sourceQmp, dest, {
            cut: () => {
              for (const c of connections) c.destroy();
            },
          });
          const info = await waitMigration(sourceQmp, ended);
          assert.equal(info.status, expect.status, JSON.stringify(info));
          if (expect.desc !== undefined) assert.match(info["error-desc"] ?? "", expect.desc);
          // The source runs on, its guest still writing, and answers.
          assert.equal(
            ((await sourceQmp.execute("query-status")) as { status: string }).status,
            "running",
          );
          const before = Math.max(
            ...source.serial.lines(/^dirty \d+/).map((l) => Number(l.slice(6))),
          );
          await source.waitFor(new RegExp(`dirty ${before + 2}\\r?\\n`), BOOT_MS);
          source.send("x");
          await source.waitFor(/OK mem dirty/, BOOT_MS);
          await shell(source, "mem check", /^OK mem check$/);
          // The destination gives up with an error.
          const exit = await dest.waitForExit(BOOT_MS);
          assert.equal(exit.code, 1, dest.stderr);
          assert.match(dest.stderr, /virga-vmm: error: incoming migration failed: /);
        },
      );
    } finally {
      proxy.close();
      tmp.cleanup();
    }
  }

  const bulk = (info: MigrationInfo): boolean =>
    info.status === "active" &&
    (info.ram?.transferred ?? 0) > 1 << 20 &&
    (info.ram?.["dirty-sync-count"] ?? 0) === 0;
  const rounds = (info: MigrationInfo): boolean => (info.ram?.["dirty-sync-count"] ?? 0) >= 2;
  const cancel = async (qmp: QmpClient): Promise<void> => {
    await qmp.execute("migrate_cancel");
  };

  it("migrate_cancel during the bulk copy leaves the source running", TEST, async () => {
    await interrupted(bulk, cancel, { status: "cancelled" });
  });

  it("migrate_cancel during the dirty rounds leaves the source running", TEST, async () => {
    await interrupted(rounds, cancel, { status: "cancelled" });
  });

  it("a destination killed mid-way fails the migration; the source runs on", TEST, async () => {
    const tmp = tempDir();
    try {
      await withPair(
        (dir) => `unix:${path.join(dir, "migration.sock")}`,
        async (source, sourceQmp, dest, _destQmp, uri) => {
          await shell(source, "mem fill 24 5", /OK mem fill/);
          await sourceQmp.execute("migrate-set-parameters", { "max-bandwidth": 8 << 20 });
          await sourceQmp.execute("migrate", { uri });
          await waitMigration(sourceQmp, (info) => bulk(info) || ended(info));
          dest.child.kill("SIGKILL");
          const info = await waitMigration(sourceQmp, ended);
          assert.equal(info.status, "failed");
          assert.match(info["error-desc"] ?? "", /connection|closed|broke/);
          assert.equal(
            ((await sourceQmp.execute("query-status")) as { status: string }).status,
            "running",
          );
          await shell(source, "mem sum 1", /OK mem sum/);
        },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("a cut connection fails the migration; the source runs on", TEST, async () => {
    await interrupted(
      rounds,
      (_qmp, _dest, proxy) => {
        proxy.cut();
        return Promise.resolve();
      },
      {
        status: "failed",
        desc: /connection|closed|broke/,
      },
    );
  });

  it(
    "a destination with another machine refuses it by name; nothing runs there",
    TEST,
    async () => {
      await withPair(
        (dir) => `unix:${path.join(dir, "migration.sock")}`,
        async (_source, sourceQmp, dest, _destQmp, uri) => {
          await sourceQmp.execute("migrate", { uri });
          const info = await waitMigration(sourceQmp, ended);
          assert.equal(info.status, "failed");
          assert.match(
            info["error-desc"] ?? "",
            /^the destination refused: the destination's command line does not describe the source's machine: -m: the source has 256 MiB, the command line 128 MiB$/,
          );
          assert.equal(
            ((await sourceQmp.execute("query-status")) as { status: string }).status,
            "running",
          );
          assert.equal((await dest.waitForExit(BOOT_MS)).code, 1);
        },
        probeArgs({ smp: "2", memory: "128" }),
      );
    },
  );
});
