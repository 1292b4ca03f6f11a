// `npm run bench linux`: boots one L1 machine with real KVM (the host's PVM
// cannot run stock Linux) and compares Linux boot times, device figures and
// snapshot, restore and migration figures and the q35 board's boot and
// hot-plug figures there (linux-in-l1.ts runs inside).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import type { DeviceResult } from "./devices-in-l1";
import type { SnapMigResult } from "./snapmig-in-l1";
import type { Q35Figures } from "./q35-in-l1";
import { printTable } from "./measure";
import { printQ35 } from "./q35-report";

const root = path.resolve(__dirname, "..", "..", "..", "..");
/** run-in-l1.sh's status when L1 died or hung while the command ran. */
const L1_LOST = 91;

interface BootFigures {
  virga: { medianMs: number };
  qemu: { medianMs: number };
  qemuNoDevices: { medianMs: number };
  virgaAccounting: {
    readyMs: number;
    startToFirstEntryMs: number;
    exits: number;
    exitHandlingMs: number;
    runBeforeReadyMs: number;
  };
}

interface DeviceFigures {
  reps: number;
  netMiB: number;
  smp: number;
  memMiB: number;
  virga?: DeviceResult;
  qemu?: DeviceResult;
}

interface SnapMigFigures {
  reps: number;
  smp: number;
  memMiB: number;
  dirtyMiB: number;
  dirtyMiBps: number;
  virga?: SnapMigResult;
  qemu?: SnapMigResult;
}

/** Options passed on to the L1 side as they are. */
const PASSED_ON = [
  "--section",
  "--device-runs",
  "--net-mib",
  "--net-irq-cpu",
  "--net-task-cpu",
  "--snapmig-runs",
  "--hotplug-runs",
];

function passedOn(): string[] {
  const out: string[] = [];
  for (const name of PASSED_ON) {
    const i = process.argv.indexOf(name);
    const value = i >= 0 ? process.argv[i + 1] : undefined;
    if (value !== undefined) out.push(name, value);
  }
  return out;
}

function printBoot(result: BootFigures, runs: number): Record<string, number> {
  const ratio = result.virga.medianMs / result.qemu.medianMs;
  const bareRatio = result.virga.medianMs / result.qemuNoDevices.medianMs;
  console.log(
    `process start -> VIRGA-GUEST ready, median: virga-vmm ${result.virga.medianMs.toFixed(0)} ms, ` +
      `qemu microvm with the same disks ${result.qemu.medianMs.toFixed(0)} ms, ratio ${ratio.toFixed(2)} ` +
      `(target <= 0.6: ${ratio <= 0.6 ? "met" : "not met"}); ` +
      `qemu microvm with no devices ${result.qemuNoDevices.medianMs.toFixed(0)} ms, ratio ${bareRatio.toFixed(2)}`,
  );
  const a = result.virgaAccounting;
  console.log(
    `where virga-vmm's ${a.readyMs.toFixed(0)} ms to ready go (median of ${runs} more runs to power-off, -D log): ` +
      `first guest entry ${a.startToFirstEntryMs.toFixed(0)} ms after start, ${a.exits.toFixed(0)} exits handled in ${a.exitHandlingMs.toFixed(0)} ms, ` +
      `and at least ${a.runBeforeReadyMs.toFixed(0)} ms inside KVM_RUN (the guest's code and the host kernel's KVM, none of it ` +
      `virga-vmm's own code): ${(a.runBeforeReadyMs / result.qemu.medianMs).toFixed(2)} of QEMU's time by itself`,
  );
  return { ratio, bareRatio };
}

function printDevices(devices: DeviceFigures): void {
  const { virga, qemu } = devices;
  const NOT_YET = "not supported yet";
  type Pick = (d: DeviceResult) => number | undefined;
  const cell = (d: DeviceResult | undefined, pick: Pick, digits: number): string => {
    if (d === undefined) return "-";
    const v = pick(d);
    return v === undefined ? NOT_YET : v.toFixed(digits);
  };
  const row = (label: string, pick: Pick, digits: number): string[] => {
    const v = virga === undefined ? undefined : pick(virga);
    const q = qemu === undefined ? undefined : pick(qemu);
    return [
      label,
      cell(virga, pick, digits),
      cell(qemu, pick, digits),
      v !== undefined && q ? (v / q).toFixed(2) : "",
    ];
  };
  const net = (pick: (n: { guestToL1MBps: number; l1ToGuestMBps: number }) => number): Pick => {
    return (d) => (d.net.supported ? pick(d.net) : undefined);
  };
  console.log(
    `devices (${devices.smp} vCPUs, ${devices.memMiB} MiB; each figure the median of ${devices.reps} ` +
      `alternating boots per VMM; NIC on a tap in L1, disks raw images in L1's tmpfs; O_DIRECT in the guest):`,
  );
  printTable([
    ["", "virga-vmm", "qemu microvm", "ratio"],
    row(
      `net TCP guest -> L1, ${devices.netMiB} MiB (MB/s)`,
      net((n) => n.guestToL1MBps),
      1,
    ),
    row(
      `net TCP L1 -> guest, ${devices.netMiB} MiB (MB/s)`,
      net((n) => n.l1ToGuestMBps),
      1,
    ),
    row("blk sequential read, 1 MiB requests (MB/s)", (d) => d.blk.seqReadMBps, 1),
    row("blk sequential write, 1 MiB requests (MB/s)", (d) => d.blk.seqWriteMBps, 1),
    row("blk 4 KiB random read, queue depth 1 (IOPS)", (d) => d.blk.randRead4kIops1, 0),
    row("blk 4 KiB random read, queue depth 4 (IOPS)", (d) => d.blk.randRead4kIops4, 0),
    row("blk 4 KiB random read latency, depth 1 (us)", (d) => d.blk.randRead4kLatencyUs1, 0),
    row("MMIO register read, idle, median (us)", (d) => d.mmio.idle.medianUs, 1),
    row("MMIO register read, idle, p99 (us)", (d) => d.mmio.idle.p99Us, 1),
    row("MMIO read, other disk busy, median (us)", (d) => d.mmio.loaded.medianUs, 1),
    row("MMIO read, other disk busy, p99 (us)", (d) => d.mmio.loaded.p99Us, 1),
    row("the busy disk meanwhile (MB/s)", (d) => d.mmio.loaded.loadMBps, 1),
  ]);
  for (const [name, d] of [
    ["virga-vmm", virga],
    ["qemu", qemu],
  ] as const) {
    if (d !== undefined && !d.net.supported)
      console.log(`${name} net: ${NOT_YET}: ${d.net.reason}`);
    if (d !== undefined) console.log(`${name} MMIO slot timed: ${d.mmio.idle.slot}`);
    if (d?.firstAttemptError !== undefined)
      console.log(
        `${name}: a round failed and ran once more; its first error:\n${d.firstAttemptError}`,
      );
  }
}

function printSnapMig(f: SnapMigFigures): void {
  const row = (label: string, pick: (r: SnapMigResult) => number, digits: number): string[] => {
    const v = f.virga === undefined ? undefined : pick(f.virga);
    const q = f.qemu === undefined ? undefined : pick(f.qemu);
    return [
      label,
      v === undefined ? "-" : v.toFixed(digits),
      q === undefined ? "-" : q.toFixed(digits),
      v !== undefined && q ? (v / q).toFixed(2) : "",
    ];
  };
  console.log(
    `snapshots and migration (${f.smp} vCPUs, ${f.memMiB} MiB, the guest's shell up; medians of ${f.reps} ` +
      `alternating rounds per VMM; virga-vmm: migrate file:, QEMU 7.2: stop + migrate exec:cat; ` +
      `migration over a unix socket in L1, downtime limit 50 ms, the guest rewriting ${f.dirtyMiB} MiB at ${f.dirtyMiBps} MiB/s):`,
  );
  printTable([
    ["", "virga-vmm", "qemu microvm", "ratio"],
    row("snapshot: first command -> completed (ms)", (r) => r.snapshotMs, 0),
    row("snapshot on disk (MiB)", (r) => r.snapshotBytes / 1048576, 1),
    row("restore: process start -> shell answers (ms)", (r) => r.restoreMs, 0),
    row("migration total time (ms)", (r) => r.migrateTotalMs, 0),
    row("migration downtime (ms)", (r) => r.migrateDowntimeMs, 0),
    row("migration data sent (MiB)", (r) => r.migrateMiB, 1),
    row("the guest's write rate meanwhile (MiB/s)", (r) => r.dirtyMiBps, 1),
  ]);
}

export function runLinuxBench(runs: number, smp: number, memMiB: number): void {
  const scratch = mkdtempSync(path.join(tmpdir(), "virga-bench-linux-"));
  try {
    const out = path.join(scratch, "linux.json");
    if (!/--section (devices|snapmig)/.test(passedOn().join(" ")))
      console.log(
        `linux: ${runs} boots each inside one L1 machine, ${smp} vCPU(s), ${memMiB} MiB (alternating)`,
      );
    const runL1 = () =>
      spawnSync(
        "bash",
        [
          path.join(root, "apps", "host", "test", "nested", "run-in-l1.sh"),
          "--share",
          scratch,
          "--timeout",
          "3000",
          "--",
          process.execPath,
          path.join(root, "apps", "host", "dist", "bench", "linux-in-l1.js"),
          "--runs",
          String(runs),
          "--smp",
          String(smp),
          "--mem",
          String(memMiB),
          "--out",
          out,
          ...passedOn(),
        ],
        { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
      );
    const loadBefore = loadavg()[0] ?? 0;
    let run = runL1();
    // L1 itself lost (exit 91: QEMU's TCG SVM losing an interrupt, as the
    // Linux tests meet it too): one fresh L1, as they get.
    if (run.status === L1_LOST) {
      console.log(
        `the L1 machine was lost (exit ${L1_LOST}); running the bench once more in a fresh one`,
      );
      run = runL1();
    }
    if (run.status !== 0) throw new Error(`the L1 run failed (exit ${String(run.status)})`);
    const hostLoad = [loadBefore, loadavg()[0] ?? 0];
    const result = JSON.parse(readFileSync(out, "utf8")) as Partial<BootFigures> & {
      devices?: DeviceFigures;
      snapmig?: SnapMigFigures;
      q35?: Q35Figures;
    };
    let ratios = {};
    if (result.virga !== undefined) ratios = printBoot(result as BootFigures, runs);
    if (result.devices !== undefined) printDevices(result.devices);
    if (result.snapmig !== undefined) printSnapMig(result.snapmig);
    if (result.q35 !== undefined) printQ35(result.q35);
    console.log(
      `the host's load average (1 min) before / after: ${hostLoad.map((l) => l.toFixed(1)).join(" / ")}`,
    );
    const outDir = path.join(root, "bench-results");
    mkdirSync(outDir, { recursive: true });
    writeFileSync(
      path.join(outDir, "linux.json"),
      JSON.stringify({ date: new Date().toISOString(), hostLoad, ...ratios, ...result }, null, 2) +
        "\n",
    );
    console.log("wrote bench-results/linux.json");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
