// Live migration over loopback tcp, virga-vmm beside QEMU with the same
// probe guest (part of `npm run bench`; alone: `npm run bench migration`).
// For each side and run: a source at its prompt and a destination started
// with `-incoming tcp:127.0.0.1:<port>` (waited for by its listening socket
// in /proc/net/tcp, since a probing connection would be taken for the
// source), the same migrate-set-parameters on both (downtime-limit, and a
// bandwidth limit no loopback link reaches, as QEMU's default is 32 MiB/s),
// then migrate and query-migrate every 5 ms until completed:
//   idle:  the guest sits at its prompt
//   dirty: the guest writes `dirtyRate` MiB/s over a `dirtyMiB` window
//          (`mem dirty`) throughout
// Figures are the source's query-migrate: total-time, downtime,
// dirty-sync-count, transferred; and the wall time from migrate to
// completed. The destination must then answer at its prompt (and, after
// writing, `mem check` every page the guest wrote).
import { readFileSync } from "node:fs";
import path from "node:path";
import { freePort } from "../test/support/ports";
import { median } from "./measure";
import { connectWhenListening, sleep, Vmm, waitForFile } from "./vmm-process";
import { promptAnswered, shown, spread, type BenchVmm, type Spread } from "./restore";

/** QEMU's cap on max-bandwidth is far above this; 10 GiB/s is never reached on loopback here. */
const UNLIMITED_BANDWIDTH = 10 * 1024 * 1024 * 1024;

interface MigrationSample {
  wallMs: number;
  totalMs: number;
  downtimeMs: number;
  rounds: number;
  transferredMiB: number;
  /** virga-vmm's query-migrate x-virga-phases (ms); none for QEMU. */
  phases: Record<string, number>;
}

export interface MigrationSide {
  wallMs: Spread;
  totalMs: Spread;
  downtimeMs: Spread;
  rounds: Spread;
  transferredMiB: Spread;
  /** Each phase's median (ms). */
  phases: Record<string, number>;
}

export interface MigrationBenchResult {
  memMiB: number;
  runs: number;
  downtimeLimitMs: number;
  dirtyMiB: number;
  dirtyRate: number;
  idle: { virga: MigrationSide; qemu: MigrationSide };
  dirty: { virga: MigrationSide; qemu: MigrationSide };
}

interface MigrateInfo {
  status?: string;
  "error-desc"?: string;
  "total-time"?: number;
  downtime?: number;
  ram?: { transferred?: number; "dirty-sync-count"?: number };
  "x-virga-phases"?: Record<string, number>;
}

/** Whether something listens on 127.0.0.1:port, from /proc/net/tcp (state 0A). */
function listening(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1] === local && fields[3] === "0A";
    });
}

async function migrateOnce(
  side: BenchVmm,
  scratch: string,
  options: { downtimeLimitMs: number; dirty: { mib: number; rate: number } | null },
): Promise<MigrationSample> {
  const port = await freePort();
  const socket = path.join(scratch, `${side.name}-source.sock`);
  const source = new Vmm(...side.command(side.qmp(socket)));
  const dest = new Vmm(...side.command(["-incoming", `tcp:127.0.0.1:${port}`]));
  try {
    await source.waitFor("probe> ");
    for (let waited = 0; !listening(port); waited += 2) {
      if (waited > 30000)
        throw new Error(`${side.name}: the destination never listened on ${port}`);
      await sleep(2);
    }
    // QMP first: virga-vmm's control plane starts with its first client,
    // and the guest must not write for longer on one side than the other.
    await waitForFile(socket);
    const qmp = await connectWhenListening(socket);
    let info: MigrateInfo;
    let wallMs: number;
    try {
      await qmp.execute("qmp_capabilities");
      await qmp.execute("migrate-set-parameters", {
        "downtime-limit": options.downtimeLimitMs,
        "max-bandwidth": UNLIMITED_BANDWIDTH,
      });
      if (options.dirty !== null) {
        source.type(`mem dirty ${options.dirty.mib} ${options.dirty.rate}\n`);
        await source.waitFor("dirty 3\n");
      }
      const started = performance.now();
      await qmp.execute("migrate", { uri: `tcp:127.0.0.1:${port}` });
      for (;;) {
        info = (await qmp.execute("query-migrate")) as MigrateInfo;
        if (info.status === "completed") break;
        if (info.status === "failed" || info.status === "cancelled") {
          throw new Error(`${side.name}: migration ${info.status}: ${info["error-desc"]}`);
        }
        await sleep(5);
      }
      wallMs = performance.now() - started;
    } finally {
      qmp.close();
    }
    // The guest carries on at the destination, with what it wrote.
    await promptAnswered(dest);
    if (options.dirty !== null) {
      dest.type("mem check\n");
      // OK, or ERR naming the first page that differs.
      for (let waited = 0; !/(OK|ERR) mem check/.test(dest.output); waited += 2) {
        if (waited > 30000)
          throw new Error(`${side.name}: the destination did not check its memory`);
        await sleep(2);
      }
      if (!dest.output.includes("OK mem check")) {
        throw new Error(
          `${side.name}: the destination's memory differs: ${dest.output.slice(-200)}`,
        );
      }
    }
    return {
      wallMs,
      totalMs: info["total-time"] ?? Number.NaN,
      downtimeMs: info.downtime ?? Number.NaN,
      rounds: info.ram?.["dirty-sync-count"] ?? Number.NaN,
      transferredMiB: (info.ram?.transferred ?? Number.NaN) / 1048576,
      phases: info["x-virga-phases"] ?? {},
    };
  } finally {
    await Promise.all([source.kill(), dest.kill()]);
  }
}

function summarise(samples: MigrationSample[]): MigrationSide {
  const of = (key: Exclude<keyof MigrationSample, "phases">) => spread(samples.map((s) => s[key]));
  const phases: Record<string, number> = {};
  for (const name of Object.keys(samples[0]?.phases ?? {})) {
    phases[name] = median(samples.map((s) => s.phases[name] ?? Number.NaN));
  }
  return {
    phases,
    wallMs: of("wallMs"),
    totalMs: of("totalMs"),
    downtimeMs: of("downtimeMs"),
    rounds: of("rounds"),
    transferredMiB: of("transferredMiB"),
  };
}

export async function runMigrationBench(options: {
  virga: BenchVmm;
  qemu: BenchVmm;
  memMiB: number;
  runs: number;
  downtimeLimitMs: number;
  dirtyMiB: number;
  dirtyRate: number;
  scratch: string;
}): Promise<MigrationBenchResult> {
  const scenario = async (dirty: { mib: number; rate: number } | null) => {
    const samples = { virga: [] as MigrationSample[], qemu: [] as MigrationSample[] };
    for (let i = 0; i < options.runs; i++) {
      for (const side of ["virga", "qemu"] as const) {
        samples[side].push(
          await migrateOnce(options[side], options.scratch, {
            downtimeLimitMs: options.downtimeLimitMs,
            dirty,
          }),
        );
      }
    }
    return { virga: summarise(samples.virga), qemu: summarise(samples.qemu) };
  };
  return {
    memMiB: options.memMiB,
    runs: options.runs,
    downtimeLimitMs: options.downtimeLimitMs,
    dirtyMiB: options.dirtyMiB,
    dirtyRate: options.dirtyRate,
    idle: await scenario(null),
    dirty: await scenario({ mib: options.dirtyMiB, rate: options.dirtyRate }),
  };
}

export function migrationRows(r: MigrationBenchResult): string[][] {
  const rows: string[][] = [
    [
      `migration over loopback tcp: ${r.memMiB} MiB probe guest, downtime-limit ${r.downtimeLimitMs} ms, ${r.runs} runs, median (min–max)`,
      "virga-vmm",
      "qemu",
    ],
  ];
  const scenarios = [
    ["idle", r.idle],
    [`writing ${r.dirtyRate} MiB/s`, r.dirty],
  ] as const;
  for (const [name, s] of scenarios) {
    rows.push(
      [`${name}: total-time (ms)`, shown(s.virga.totalMs, 0), shown(s.qemu.totalMs, 0)],
      [`${name}: downtime (ms)`, shown(s.virga.downtimeMs, 0), shown(s.qemu.downtimeMs, 0)],
      [`${name}: rounds (dirty-sync-count)`, shown(s.virga.rounds, 0), shown(s.qemu.rounds, 0)],
      [`${name}: transferred (MiB)`, shown(s.virga.transferredMiB), shown(s.qemu.transferredMiB)],
      [
        `${name}: migrate → completed seen over QMP (ms)`,
        shown(s.virga.wallMs, 0),
        shown(s.qemu.wallMs, 0),
      ],
      [
        `${name}: virga-vmm's phases, medians (ms)`,
        Object.entries(s.virga.phases)
          .map(([phase, ms]) => `${phase} ${ms}`)
          .join(", "),
        "",
      ],
    );
  }
  return rows;
}
