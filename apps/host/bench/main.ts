// `npm run bench`: virga-vmm side by side with QEMU's microvm, same probe
// guest, vCPUs, memory and block slots, in the same run.
//   boot:   process start → "PROBE ready" on the serial console (median of N)
//   memory: VMM overhead = PSS of the process − PSS of guest RAM (median);
//           also RSS and private (USS) overhead; and the PSS of the whole
//           VM while QMP serves (virga-vmm then has its Node control plane)
//   qmp:    query-status round trips per second and p99 from one client
//   density: PSS/USS/RSS per VM beyond guest RAM with 1, 10 and 50 VMs
//           under virgad (each with virgad's QMP connection) against as many
//           QEMU microvms with one QMP client each, and a boot storm of the
//           largest count (bench/density.ts)
//   clones: clones per second from one snapshot template, and PSS per idle
//           clone (bench/clones.ts)
//   snapshot: snapshot time and size of a 512 MiB guest with 64 MiB
//           written, and restore (process start → prompt; start → first
//           vCPU entry inside virga-vmm) against QEMU's migrate to and
//           -incoming from a file (bench/restore.ts)
//   migration: live migration of a 512 MiB guest over loopback tcp, idle
//           and writing 50 MiB/s: total time, downtime, rounds against
//           QEMU's (bench/migration.ts)
// Prints a table and writes bench-results/bench.json at the repository root.
// Options: --runs N (10), --smp N (1), --mem MiB (128), --qmp-seconds S (3),
// --density 1,10,50 (VM counts), --clones N (20), --touch MiB (64);
// snapshot and migration: --big-mem MiB (512), --fill MiB (64),
// --snapshot-runs N (5), --migration-runs N (5), --downtime-limit ms (50),
// --dirty-rate MiB/s (50), --dirty-window MiB (64).
// `npm run bench density` / `clones` / `snapshot` / `migration` run only
// that section.
// `npm run bench linux [--runs 5 --smp 1 --mem 512]`: stock Debian Linux boot
// time inside the nested-KVM harness instead (bench/linux.ts).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { cloneRows, runCloneBench, type CloneBenchResult } from "./clones";
import { runDensity, type DensityResult } from "./density";
import { runLinuxBench } from "./linux";
import { migrationRows, runMigrationBench, type MigrationBenchResult } from "./migration";
import { runSnapshotBench, snapshotRows, type BenchVmm, type SnapshotBenchResult } from "./restore";
import {
  bootOnce,
  median,
  memoryOfTree,
  printTable,
  QEMU_SAME_DISKS,
  qemuMicrovm,
  qmpRoundTrips,
  type BootSample,
  type QmpSample,
} from "./measure";

const root = path.resolve(__dirname, "..", "..", "..", "..");
const probe = path.join(root, "native", "probe-guest", "build", "probe.elf");
const vmmBin = path.join(root, "native", "build", "Release", "virga-vmm");

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`--${name}: expected a positive number`);
  return value;
}

const runs = option("runs", 10);
const smp = option("smp", 1);
const memMiB = option("mem", 128);
const qmpSeconds = option("qmp-seconds", 3);
const densityCounts = (() => {
  const index = process.argv.indexOf("--density");
  const text = index >= 0 ? (process.argv[index + 1] ?? "") : "1,10,50";
  const counts = text.split(",").map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n <= 0))
    throw new Error("--density: expected VM counts like 1,10,50");
  return counts;
})();
const guestBytes = memMiB * 1024 * 1024;
const append = "console=ttyS0";

function virgaArgs(extra: string[] = [], mem = memMiB): [string, string[]] {
  return [
    vmmBin,
    [
      "-machine",
      "microvm",
      "-kernel",
      probe,
      "-smp",
      String(smp),
      "-m",
      String(mem),
      "-append",
      append,
      "-serial",
      "stdio",
      ...extra,
    ],
  ];
}

function qemuArgs(
  extra: string[] = [],
  devices: string[] = QEMU_SAME_DISKS,
  mem = memMiB,
): [string, string[]] {
  return qemuMicrovm({
    machine: "microvm,acpi=off",
    cpu: "host,-arch-capabilities",
    smp: String(smp),
    memMiB: String(mem),
    kernel: probe,
    append,
    extra: [...devices, ...extra],
  });
}

interface Side {
  boot: BootSample[];
  qmp: QmpSample | null;
  /** PSS of the whole VM (the VM process and, for virga-vmm, its control plane) with QMP up. */
  qmpOverheadPssMiB: number | null;
}

async function qmpSide(command: [string, string[]], socketPath: string, side: Side): Promise<void> {
  const child = spawn(command[0], command[1], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => {
    child.on("exit", () => {
      resolve();
    });
  });
  try {
    const deadline = Date.now() + 30000;
    while (!existsSync(socketPath)) {
      if (Date.now() > deadline) throw new Error(`${command[0]}: no QMP socket`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    side.qmp = await qmpRoundTrips(socketPath, qmpSeconds * 1000);
    const memory = memoryOfTree(child.pid ?? 0, guestBytes);
    side.qmpOverheadPssMiB = (memory.pssKiB - memory.guestRamPssKiB) / 1024;
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

function summarise(side: Side) {
  const overheadPss = side.boot.map((s) => (s.pssKiB - s.guestRamPssKiB) / 1024);
  const overheadRss = side.boot.map((s) => (s.rssKiB - s.guestRamRssKiB) / 1024);
  const overheadUss = side.boot.map((s) => s.ussKiB / 1024);
  return {
    bootMedianMs: median(side.boot.map((s) => s.readyMs)),
    bootMinMs: Math.min(...side.boot.map((s) => s.readyMs)),
    overheadPssMiB: median(overheadPss),
    overheadRssMiB: median(overheadRss),
    overheadUssMiB: median(overheadUss),
    guestTouchedMiB: median(side.boot.map((s) => s.guestRamRssKiB / 1024)),
    qmpOverheadPssMiB: side.qmpOverheadPssMiB,
    qmp: side.qmp,
  };
}

/** The density section: runs it and prints its table; the result goes into bench.json. */
async function densitySection(): Promise<DensityResult> {
  const scratch = mkdtempSync(path.join(tmpdir(), "virga-density-"));
  try {
    const result = await runDensity({
      counts: densityCounts,
      cpus: smp,
      memMiB,
      qmpSeconds,
      scratch,
      qemu: (socketPath) => qemuArgs(["-qmp", `unix:${socketPath},server=on,wait=off`]),
      progress: (line) => {
        console.log(line);
      },
    });
    console.log(
      `density: memory per VM beyond guest RAM (MiB), each VM with one QMP client; virga-vmm counts its share of the control-plane host (${result.hostPssMiB.toFixed(1)} MiB PSS at ${result.stormMs.vms} VMs, ${result.companions} companion control planes)`,
    );
    const rows: string[][] = [["", "virga-vmm PSS", "USS", "RSS", "qemu PSS", "USS", "RSS"]];
    result.virga.forEach((v, i) => {
      const q = result.qemu[i];
      rows.push([
        `${v.vms} VM${v.vms === 1 ? "" : "s"}`,
        v.pssMiB.toFixed(2),
        v.ussMiB.toFixed(2),
        v.rssMiB.toFixed(2),
        q?.pssMiB.toFixed(2) ?? "-",
        q?.ussMiB.toFixed(2) ?? "-",
        q?.rssMiB.toFixed(2) ?? "-",
      ]);
    });
    rows.push([
      `boot storm of ${result.stormMs.vms}: all running (ms)`,
      result.stormMs.virga.toFixed(0),
      "",
      "",
      result.stormMs.qemu.toFixed(0),
      "",
      "",
    ]);
    printTable(rows);
    if (result.hostQmp !== null) {
      console.log(
        `QMP to a VM the host serves: ${result.hostQmp.perSecond.toFixed(0)} query-status per second, p50 ${result.hostQmp.p50Us.toFixed(0)} us, p99 ${result.hostQmp.p99Us.toFixed(0)} us (one client, sequential)`,
      );
    }
    console.log(
      `one more QMP client per VM adds ${result.extraClientKiB.pss.toFixed(0)} KiB PSS (${result.extraClientKiB.rss.toFixed(0)} KiB RSS) per client to the host`,
    );
    const at50 = result.virga.find((sample) => sample.vms === 50);
    if (at50 !== undefined) {
      console.log(
        `target: <= 5 MiB PSS per VM beyond guest RAM at 50 VMs (${at50.pssMiB <= 5 ? "met" : "not met"})`,
      );
    }
    return result;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function cloneBench(): Promise<CloneBenchResult> {
  const count = option("clones", 20);
  const touchMiB = option("touch", Math.min(64, memMiB / 2));
  console.log(`clones: ${count} at once from one template, three ways`);
  const result = await runCloneBench({ vmmBin, probe, count, smp, memMiB, touchMiB });
  printTable(cloneRows(result));
  console.log(
    `targets: >= 20 clones/s (${result.virgad.clonesPerSecond >= 20 ? "met" : "not met"} through virgad, ${result.serial.clonesPerSecond >= 20 ? "met" : "not met"} to the serial console), idle clone PSS a small fraction of guest RAM (${result.idleClonePssMiB / memMiB < 0.1 ? "met" : "not met"}: ${((100 * result.idleClonePssMiB) / memMiB).toFixed(1)}%)`,
  );
  return result;
}

/** Both VMMs with the larger guest the snapshot and migration sections use. */
function bigGuests(): { virga: BenchVmm; qemu: BenchVmm; mem: number } {
  const mem = option("big-mem", 512);
  return {
    mem,
    virga: {
      name: "virga-vmm",
      command: (extra) => virgaArgs(extra, mem),
      qmp: (socket) => ["-qmp", `unix:${socket},server,nowait`],
    },
    qemu: {
      name: "qemu",
      command: (extra) => qemuArgs(extra, QEMU_SAME_DISKS, mem),
      qmp: (socket) => ["-qmp", `unix:${socket},server=on,wait=off`],
    },
  };
}

function snapshotSection() {
  return underLoad(snapshotBench);
}

function migrationSection() {
  return underLoad(migrationBench);
}

async function snapshotBench(): Promise<SnapshotBenchResult> {
  const { virga, qemu, mem } = bigGuests();
  const result = await withScratch("virga-snapshot-bench-", (scratch) =>
    runSnapshotBench({
      virga,
      qemu,
      memMiB: mem,
      fillMiB: option("fill", 64),
      runs: option("snapshot-runs", 5),
      scratch,
    }),
  );
  printTable(snapshotRows(result));
  const firstEntry = result.virga.firstEntryMs.median;
  const e2e = result.virga.restoreMs.median / result.qemu.restoreMs.median;
  console.log(
    `targets: <= 10 ms inside the VMM from start to the first vCPU entry (${firstEntry <= 10 ? "met" : "not met"}), end to end well under QEMU's (${e2e.toFixed(2)} x QEMU)`,
  );
  return result;
}

async function migrationBench(): Promise<MigrationBenchResult> {
  const { virga, qemu, mem } = bigGuests();
  const result = await withScratch("virga-migration-bench-", (scratch) =>
    runMigrationBench({
      virga,
      qemu,
      memMiB: mem,
      runs: option("migration-runs", 5),
      downtimeLimitMs: option("downtime-limit", 50),
      dirtyMiB: option("dirty-window", 64),
      dirtyRate: option("dirty-rate", 50),
      scratch,
    }),
  );
  printTable(migrationRows(result));
  const met = (ok: boolean) => (ok ? "met" : "not met");
  const { idle, dirty } = result;
  console.log(
    `targets: total-time <= QEMU's (idle ${met(idle.virga.totalMs.median <= idle.qemu.totalMs.median)}, writing ${met(dirty.virga.totalMs.median <= dirty.qemu.totalMs.median)}), downtime <= 10 ms (idle ${met(idle.virga.downtimeMs.max <= 10)}, writing ${met(dirty.virga.downtimeMs.max <= 10)}, every run)`,
  );
  return result;
}

/** A scratch directory under /tmp for `run`, removed after. */
async function withScratch<T>(prefix: string, run: (dir: string) => Promise<T>): Promise<T> {
  const scratch = mkdtempSync(path.join(tmpdir(), prefix));
  try {
    return await run(scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The 1-minute load average around a section: its figures mean little on a busy machine. */
async function underLoad<T extends object>(
  run: () => Promise<T>,
): Promise<T & { loadAverage: number[] }> {
  const before = loadavg()[0] ?? 0;
  const result = await run();
  const after = loadavg()[0] ?? 0;
  console.log(`load average (1 min) before / after: ${before.toFixed(1)} / ${after.toFixed(1)}`);
  return { ...result, loadAverage: [before, after] };
}

function writeResult(name: string, result: object): void {
  const outDir = path.join(root, "bench-results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, name), JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${path.relative(process.cwd(), path.join(outDir, name))}`);
}

async function main(): Promise<void> {
  if (process.argv.includes("linux")) {
    runLinuxBench(option("runs", 5), smp, option("mem", 512));
    return;
  }
  if (!existsSync(probe)) throw new Error(`probe guest not built: ${probe} (npm install)`);
  if (process.argv.includes("clones")) {
    writeResult("clones.json", { date: new Date().toISOString(), ...(await cloneBench()) });
    return;
  }
  if (process.argv.includes("snapshot")) {
    writeResult("snapshot.json", { date: new Date().toISOString(), ...(await snapshotSection()) });
    return;
  }
  if (process.argv.includes("migration")) {
    writeResult("migration.json", {
      date: new Date().toISOString(),
      ...(await migrationSection()),
    });
    return;
  }
  if (process.argv.includes("density")) {
    const density = await densitySection();
    writeResult("density.json", {
      date: new Date().toISOString(),
      config: { smp, memMiB, counts: densityCounts, guest: "probe.elf" },
      density,
    });
    return;
  }
  const virga: Side = { boot: [], qmp: null, qmpOverheadPssMiB: null };
  const qemu: Side = { boot: [], qmp: null, qmpOverheadPssMiB: null };
  const bare: Side = { boot: [], qmp: null, qmpOverheadPssMiB: null };
  console.log(`boot: ${runs} runs each, probe guest, ${smp} vCPU(s), ${memMiB} MiB (alternating)`);
  for (let i = 0; i < runs; i++) {
    virga.boot.push(await bootOnce(...virgaArgs(), "PROBE ready", guestBytes));
    qemu.boot.push(await bootOnce(...qemuArgs(), "PROBE ready", guestBytes));
    bare.boot.push(await bootOnce(...qemuArgs([], []), "PROBE ready", guestBytes));
    process.stdout.write(".");
  }
  process.stdout.write("\n");

  const scratch = mkdtempSync(path.join(tmpdir(), "virga-bench-"));
  try {
    console.log(`qmp: ${qmpSeconds} s of sequential query-status from one client, each`);
    const vSock = path.join(scratch, "virga.sock");
    await qmpSide(virgaArgs(["-qmp", `unix:${vSock},server,nowait,rate-limit=0`]), vSock, virga);
    const qSock = path.join(scratch, "qemu.sock");
    await qmpSide(qemuArgs(["-qmp", `unix:${qSock},server=on,wait=off`]), qSock, qemu);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const v = summarise(virga);
  const q = summarise(qemu);
  const b = summarise(bare);
  const ratio = v.bootMedianMs / q.bootMedianMs;
  const bareRatio = v.bootMedianMs / b.bootMedianMs;
  type Summary = ReturnType<typeof summarise>;
  /** A row: virga, QEMU (same disks) and the ratio, then QEMU (no devices) and its ratio when asked. */
  const row = (
    label: string,
    pick: (side: Summary) => number | null | undefined,
    digits: number,
    bareToo: "value" | "value and ratio" | "no",
  ): string[] => {
    const [vv, qv, bv] = [pick(v), pick(q), pick(b)];
    const show = (x: number | null | undefined): string => x?.toFixed(digits) ?? "-";
    const ratioOf = (x: number | null | undefined, y: number | null | undefined): string =>
      x !== null && x !== undefined && y ? (x / y).toFixed(2) : "";
    return [
      label,
      show(vv),
      show(qv),
      ratioOf(vv, qv),
      bareToo === "no" ? "" : show(bv),
      bareToo === "value and ratio" ? ratioOf(vv, bv) : "",
    ];
  };
  printTable([
    ["", "virga-vmm", "qemu (same disks)", "ratio", "qemu (no devices)", "ratio"],
    row("boot to PROBE ready, median (ms)", (s) => s.bootMedianMs, 1, "value and ratio"),
    row("boot, fastest (ms)", (s) => s.bootMinMs, 1, "value and ratio"),
    row("VMM overhead PSS, median (MiB)", (s) => s.overheadPssMiB, 1, "value"),
    row("VMM overhead RSS, median (MiB)", (s) => s.overheadRssMiB, 1, "value"),
    row("VMM overhead private (USS), median (MiB)", (s) => s.overheadUssMiB, 1, "value"),
    row("overhead PSS with QMP serving (MiB)", (s) => s.qmpOverheadPssMiB, 1, "no"),
    row("guest RAM touched (MiB)", (s) => s.guestTouchedMiB, 1, "no"),
    row("QMP query-status per second", (s) => s.qmp?.perSecond, 0, "no"),
    row("QMP round trip p99 (us)", (s) => s.qmp?.p99Us, 0, "no"),
  ]);
  console.log(
    `targets: boot <= 0.6 x QEMU with the same disks (${ratio <= 0.6 ? "met" : "not met"}) and with no devices (${bareRatio <= 0.6 ? "met" : "not met"}), overhead <= 15 MiB PSS (${v.overheadPssMiB <= 15 ? "met" : "not met"}; with QMP serving ${v.qmpOverheadPssMiB !== null && v.qmpOverheadPssMiB <= 15 ? "met" : "not met"}), QMP rate >= QEMU (${v.qmp && q.qmp && v.qmp.perSecond >= q.qmp.perSecond ? "met" : "not met"})`,
  );

  const density = await densitySection();
  const clones = await cloneBench();
  const snapshot = await snapshotSection();
  const migration = await migrationSection();
  const result = {
    date: new Date().toISOString(),
    config: { runs, smp, memMiB, qmpSeconds, guest: "probe.elf" },
    virga: { summary: v, samples: virga.boot },
    qemu: { summary: q, samples: qemu.boot, devices: "6 empty virtio-blk (null-co, size 0)" },
    qemuNoDevices: { summary: b, samples: bare.boot },
    bootRatio: ratio,
    bootRatioNoDevices: v.bootMedianMs / b.bootMedianMs,
    density,
    clones,
    snapshot,
    migration,
  };
  writeResult("bench.json", result);
}

main().catch((error: unknown) => {
  console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
