// Live migration of the Debian guest between two virga-vmm processes in the
// same L1 (QMP.md, "Live migration"), seen from outside: a process in the
// guest keeps printing on the console, the source migrates over a unix
// socket, and the console carries on at the destination, with the downtime
// query-migrate reports.
import assert from "node:assert/strict";
import path from "node:path";
import type { QmpClient } from "../../src/qmp/client";
import { connectQmp, waitForPath, withVmm } from "../support/guest";
import { linuxKernelArgs } from "./guest-images";
import { bootShell, guestScenario, TickWatch } from "./guest-scenario";
import type { Scenario } from "./scenarios";

const BOOT_MS = 120000;
const TICK_SECONDS = 0.1;

interface MigrationInfo {
  status: string;
  "total-time"?: number;
  downtime?: number;
  "error-desc"?: string;
  ram?: { transferred: number; total: number; "dirty-sync-count": number };
}

async function waitMigration(qmp: QmpClient, timeoutMs: number): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as MigrationInfo;
    if (["completed", "failed", "cancelled"].includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration still ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The migrated Debian guest's command line, the same at both ends. */
export function migrationMachine(): string[] {
  return [
    "-machine",
    "microvm",
    ...linuxKernelArgs({ smp: "2", mem: "256", append: "console=ttyS0 quiet virga.action=stay" }),
    "-serial",
    "stdio",
  ];
}

export function migrationScenario(): Scenario {
  return {
    name: "live migration to another virga-vmm over a unix socket: the guest's console writer carries on at the destination",
    async run(scratch) {
      const machine = migrationMachine();
      const sourceSocket = path.join(scratch, "source.sock");
      const destSocket = path.join(scratch, "dest.sock");
      const uri = `unix:${path.join(scratch, "migration.sock")}`;
      await withVmm(
        [...machine, "-qmp", `unix:${sourceSocket},server,nowait`, "-D"],
        async (source) => {
          const sourceQmp = await bootShell(source, sourceSocket);
          await withVmm(
            [...machine, "-qmp", `unix:${destSocket},server,nowait`, "-incoming", uri, "-D"],
            async (dest) => {
              await waitForPath(destSocket, dest);
              const destQmp = await connectQmp(destSocket, dest);
              await destQmp.execute("qmp_capabilities");
              assert.equal(
                ((await destQmp.execute("query-status")) as { status: string }).status,
                "inmigrate",
              );
              const sourceTicks = new TickWatch(source.serial);
              const destTicks = new TickWatch(dest.serial);
              try {
                await guestScenario(source, `ticker ${TICK_SECONDS}`);
                await sourceTicks.waitFor(5, BOOT_MS);
                assert.deepEqual(await sourceQmp.execute("migrate", { uri }), {});
                const info = await waitMigration(sourceQmp, BOOT_MS);
                assert.equal(info.status, "completed", JSON.stringify(info));
                assert.equal(typeof info.downtime, "number", JSON.stringify(info));
                const shutdown = await sourceQmp.waitForEvent("SHUTDOWN", BOOT_MS);
                assert.deepEqual(shutdown.data, { guest: false, reason: "migration" });
                assert.deepEqual(await source.waitForExit(BOOT_MS), { code: 0, signal: null });
                await destQmp.waitForEvent("RESUME", BOOT_MS);
                assert.equal(
                  ((await destQmp.execute("query-status")) as { status: string }).status,
                  "running",
                );
                // The writer goes on at the destination from the next number
                // (one line may be split between the two consoles).
                const last = sourceTicks.last();
                assert.ok(last !== undefined);
                await destTicks.waitFor(last.n + 10, BOOT_MS);
                const first = Math.min(...destTicks.ticks.keys());
                const next = destTicks.ticks.get(first);
                assert.ok(
                  next !== undefined && first > last.n && first <= last.n + 2,
                  `the source's console ended at tick ${last.n}, the destination's began at ${first}`,
                );
                // From there on every number arrives: the writer lost nothing.
                const missing = [];
                for (let n = first; n <= last.n + 10; n++)
                  if (!destTicks.ticks.has(n)) missing.push(n);
                assert.deepEqual(missing, [], `ticks missing at the destination`);
                // No gap larger than the writer's own: under L1's emulation its
                // 0.1 s ticks come every 0.3-2.5 s (each is a fork, a sleep and
                // a line of UART exits), so the bound is twice the slowest
                // interval it had at the source before the pause, plus the
                // downtime and a second for the destination's first run. By the
                // guest's clock and as seen here; a timer the destination lost
                // stops the writer for good and fails both.
                const before = sourceTicks.slowestInterval();
                const downtime = info.downtime ?? 0;
                const guestGap = next.uptime - last.uptime;
                const seenGap = next.seenAt - last.seenAt;
                assert.ok(
                  guestGap <= 2 * before.uptime + downtime / 1000 + 1,
                  `guest clock from tick ${last.n} to ${next.n}: ${guestGap.toFixed(2)} s, ` +
                    `the slowest interval before: ${before.uptime.toFixed(2)} s`,
                );
                assert.ok(
                  seenGap <= 2 * before.seenAt + downtime + 1000,
                  `tick ${last.n} to ${next.n} took ${seenGap.toFixed(0)} ms here, the slowest ` +
                    `interval before ${before.seenAt.toFixed(0)} ms, the downtime ${downtime} ms`,
                );
                console.log(
                  `migration (unix) of a 256 MiB Debian guest: total ${info["total-time"]} ms, downtime ${downtime} ms, ` +
                    `${info.ram?.["dirty-sync-count"]} rounds, ${info.ram?.transferred} bytes; ` +
                    `console: tick ${last.n} at the source, ${next.n} at the destination ` +
                    `${seenGap.toFixed(0)} ms later here (guest clock ${guestGap.toFixed(2)} s; ` +
                    `slowest interval before ${before.seenAt.toFixed(0)} ms, ${before.uptime.toFixed(2)} s)`,
                );
              } finally {
                sourceTicks.stop();
                destTicks.stop();
              }
              // The shell answers at the destination too.
              dest.send("echo migrated-$((6*7))");
              await dest.waitFor(/migrated-42/, BOOT_MS);
              sourceQmp.close();
              destQmp.close();
            },
          );
        },
      );
    },
  };
}
