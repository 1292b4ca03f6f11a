// Many live migrations of one busy Debian guest in a row (issue 14's
// intermittent failure): both vCPUs spin in user mode part of the time, a
// writer dirties memory and the ticker prints, and the guest hops from one
// virga-vmm to a fresh one `rounds` times. Each hop's two ends dump their
// vCPU registers and page hashes (VIRGA_MIGRATION_DUMP, docs/migration.md)
// and every difference fails the hop. Not in the default suite:
// VIRGA_LINUX_MIGRATION_SOAK=<rounds> adds it, and
// VIRGA_LINUX_MIGRATION_REPEAT=<n> adds the default migration scenario n
// more times, each with a fresh guest; run them alone with in-l1.js --only.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { QmpClient } from "../../src/qmp/client";
import { connectQmp, VmmProcess, waitForPath } from "../support/guest";
import { compareMigrationDumps, describeDifferences } from "../support/migration-dumps";
import { bootShell, guestScenario, TickWatch } from "./guest-scenario";
import { migrationMachine, migrationScenario } from "./migration-scenario";
import type { Scenario } from "./scenarios";

const BOOT_MS = 120000;

async function waitMigration(qmp: QmpClient, timeoutMs: number): Promise<{ status: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as { status: string };
    if (["completed", "failed", "cancelled"].includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration still ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function count(variable: string): number {
  const value = Number(process.env[variable] ?? "0");
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`${variable}: expected a whole number, got '${process.env[variable]}'`);
  return value;
}

function soak(rounds: number): Scenario {
  return {
    name: `migration soak: ${rounds} live migrations in a row of a guest busy in user mode on both vCPUs`,
    async run(scratch) {
      // A VIRGA_MIGRATION_DUMP of the caller's (a --share folder) keeps them.
      const dumps = process.env.VIRGA_MIGRATION_DUMP ?? path.join(scratch, "dumps");
      mkdirSync(dumps, { recursive: true });
      const env = { ...process.env, VIRGA_MIGRATION_DUMP: dumps };
      const machine = migrationMachine();
      const started: VmmProcess[] = [];
      // Stopped however the run ends: a watch or client left open keeps Node alive.
      const watches: TickWatch[] = [];
      const clients: QmpClient[] = [];
      const watch = (vm: VmmProcess): TickWatch => {
        const w = new TickWatch(vm.serial);
        watches.push(w);
        return w;
      };
      const vmm = (n: number, extra: string[]): VmmProcess => {
        const vm = new VmmProcess(
          [...machine, "-qmp", `unix:${path.join(scratch, `vm${n}.sock`)},server,nowait`, ...extra],
          { env },
        );
        started.push(vm);
        return vm;
      };
      let source = vmm(0, []);
      try {
        let sourceQmp = await bootShell(source, path.join(scratch, "vm0.sock"), 60000);
        clients.push(sourceQmp);
        await guestScenario(source, "ticker 0.2");
        await guestScenario(source, "dirty 16M 4");
        // Two spinners in user mode, so a pause often finds a vCPU there;
        // they rest half the time, or L1 (2 vCPUs under TCG) has no time
        // left for the VMMs' control planes.
        const spin =
          "(while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.1; done) &";
        source.send(`${spin} ${spin}`);
        let ticks = watch(source);
        await ticks.waitFor(3, BOOT_MS);
        for (let round = 1; round <= rounds; round++) {
          const uri = `unix:${path.join(scratch, `mig${round}.sock`)}`;
          const destSocket = path.join(scratch, `vm${round}.sock`);
          const dest = vmm(round, ["-incoming", uri]);
          await waitForPath(destSocket, dest);
          const destQmp = await connectQmp(destSocket, dest, 60000);
          clients.push(destQmp);
          await destQmp.execute("qmp_capabilities");
          const destTicks = watch(dest);
          assert.deepEqual(await sourceQmp.execute("migrate", { uri }), {});
          const info = await waitMigration(sourceQmp, BOOT_MS);
          assert.equal(info.status, "completed", `round ${round}: ${JSON.stringify(info)}`);
          await source.waitForExit(BOOT_MS);
          const last = ticks.last();
          const differences = compareMigrationDumps(
            dumps,
            source.child.pid ?? 0,
            dest.child.pid ?? 0,
          );
          console.log(`round ${round}: ${describeDifferences(differences)}`);
          assert.deepEqual(
            [differences.pages, differences.registers],
            [[], []],
            `round ${round}: the destination differs from the source`,
          );
          await destTicks.waitFor((last?.n ?? 0) + 3, BOOT_MS);
          source = dest;
          sourceQmp = destQmp;
          ticks = destTicks;
        }
      } catch (error) {
        if (error instanceof Error) error.message += `\n${source.transcript().slice(-8000)}`;
        throw error;
      } finally {
        for (const w of watches) w.stop();
        for (const client of clients) client.close();
        for (const vm of started) await vm.kill();
      }
    },
  };
}

export function migrationSoakScenarios(): Scenario[] {
  const repeats = Array.from({ length: count("VIRGA_LINUX_MIGRATION_REPEAT") }, (_, i) => {
    const scenario = migrationScenario();
    return { ...scenario, name: `${scenario.name} (repeat ${i + 1})` };
  });
  const rounds = count("VIRGA_LINUX_MIGRATION_SOAK");
  return rounds > 0 ? [...repeats, soak(rounds)] : repeats;
}
