// Snapshot and restore of the probe guest, virga-vmm beside QEMU (part of
// `npm run bench`; alone: `npm run bench snapshot`). A guest of `memMiB`
// writes `fillMiB` of its RAM (`mem fill`), is paused and saved:
//   virga-vmm: QMP migrate file:<dir> (a paused VM's snapshot directory)
//   QEMU:      QMP migrate "exec:cat > <file>" (QEMU 7.2 has no file: URI)
//              of the running guest, done when query-migrate says
//              completed; not stopped first, since a stream saved from a
//              stopped QEMU restores stopped, and the guest is idle anyway
// timed from the command to completion, with the size on disk. Then each
// is restored `runs` times, alternating:
//   end to end: process start → the probe shell's prompt answering an
//               Enter typed every millisecond from the start (QEMU drops
//               a key that arrives while it still loads the stream, so one
//               early key is not enough for it)
//   virga-vmm inside: from its static initialisation (just after the
//               dynamic loader) to the first KVM_RUN of vCPU 0, which the
//               VMM logs (-D) as "first guest entry" when it ends
import { rmSync, statSync } from "node:fs";
import path from "node:path";
import { QmpClient } from "../src/qmp/client";
import { median } from "./measure";
import { connectWhenListening, schedTimes, sleep, Vmm, waitForFile } from "./vmm-process";

/** How one VMM is started: the command for extra arguments, and its QMP socket argument. */
export interface BenchVmm {
  name: string;
  command: (extra: string[]) => [string, string[]];
  qmp: (socket: string) => string[];
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function spread(samples: number[]): Spread {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples };
}

interface SnapshotSide {
  /** Command → completed, seen over QMP (ms). */
  snapshotMs: Spread;
  /** query-migrate's total-time: the VMM's own count. */
  snapshotVmmMs: Spread;
  /** Bytes on disk (allocated blocks) and as files' sizes. */
  diskBytes: number;
  apparentBytes: number;
  restoreMs: Spread;
  /** Until the prompt answered, all threads: time on a CPU, and runnable waiting for one. */
  restoreCpuMs: Spread;
  restoreRunQueueMs: Spread;
}

export interface SnapshotBenchResult {
  memMiB: number;
  fillMiB: number;
  runs: number;
  virga: SnapshotSide & { firstEntryMs: Spread };
  qemu: SnapshotSide;
}

/** Types Enter every millisecond until the probe shell's prompt appears; ms since the spawn. */
export async function promptAnswered(vmm: Vmm): Promise<number> {
  const answered = await vmm.waitFor("probe> ", 30000, () => {
    vmm.type("\n");
  });
  return answered - vmm.spawnedAt;
}

/** Boots a guest, fills memory, snapshots it through `save`; returns the time. */
async function snapshotOnce(
  side: BenchVmm,
  scratch: string,
  fillMiB: number,
  save: (qmp: QmpClient) => Promise<void>,
): Promise<{ ms: number; vmmMs: number }> {
  const socket = path.join(scratch, `${side.name}.sock`);
  const vmm = new Vmm(...side.command(side.qmp(socket)));
  try {
    await vmm.waitFor("probe> ");
    vmm.type(`mem fill ${fillMiB} 7\n`);
    await vmm.waitFor("OK mem fill");
    await waitForFile(socket);
    const qmp = await connectWhenListening(socket);
    try {
      await qmp.execute("qmp_capabilities");
      const started = performance.now();
      await save(qmp);
      for (;;) {
        const info = (await qmp.execute("query-migrate")) as {
          status?: string;
          "error-desc"?: string;
          "total-time"?: number;
        };
        if (info.status === "completed") {
          return { ms: performance.now() - started, vmmMs: info["total-time"] ?? Number.NaN };
        }
        if (info.status === "failed")
          throw new Error(`${side.name}: snapshot failed: ${info["error-desc"]}`);
        await sleep(1);
      }
    } finally {
      qmp.close();
    }
  } finally {
    await vmm.kill();
  }
}

function sizes(files: string[]): { diskBytes: number; apparentBytes: number } {
  let diskBytes = 0;
  let apparentBytes = 0;
  for (const file of files) {
    const s = statSync(file);
    diskBytes += s.blocks * 512;
    apparentBytes += s.size;
  }
  return { diskBytes, apparentBytes };
}

export async function runSnapshotBench(options: {
  virga: BenchVmm;
  qemu: BenchVmm;
  memMiB: number;
  fillMiB: number;
  runs: number;
  scratch: string;
}): Promise<SnapshotBenchResult> {
  const { virga, qemu, fillMiB, runs, scratch } = options;
  const virgaDir = (i: number) => path.join(scratch, `virga-snapshot-${i}`);
  const qemuFile = (i: number) => path.join(scratch, `qemu-snapshot-${i}.bin`);
  const saves = {
    virga: [] as { ms: number; vmmMs: number }[],
    qemu: [] as { ms: number; vmmMs: number }[],
  };
  for (let i = 0; i < runs; i++) {
    if (i > 0) {
      rmSync(virgaDir(i - 1), { recursive: true, force: true });
      rmSync(qemuFile(i - 1), { force: true });
    }
    saves.virga.push(
      await snapshotOnce(virga, scratch, fillMiB, async (qmp) => {
        await qmp.execute("migrate", { uri: `file:${virgaDir(i)}` });
      }),
    );
    saves.qemu.push(
      await snapshotOnce(qemu, scratch, fillMiB, async (qmp) => {
        await qmp.execute("migrate", { uri: `exec:cat > ${qemuFile(i)}` });
      }),
    );
  }
  const template = virgaDir(runs - 1);
  const stream = qemuFile(runs - 1);

  const restore = { virga: [] as number[], qemu: [] as number[], firstEntry: [] as number[] };
  const sched = {
    virga: [] as { cpuMs: number; waitMs: number }[],
    qemu: [] as { cpuMs: number; waitMs: number }[],
  };
  for (let i = 0; i < runs; i++) {
    const v = new Vmm(...virga.command(["-incoming", `file:${template}`, "-D"]));
    try {
      restore.virga.push(await promptAnswered(v));
      sched.virga.push(schedTimes(v.child.pid ?? 0));
    } finally {
      // SIGTERM: the VMM logs each vCPU's run statistics as it ends.
      await v.kill("SIGTERM");
    }
    const entry = /vcpu0: .*first guest entry ([\d.]+) ms after start/.exec(v.stderr);
    if (entry === null) throw new Error(`virga-vmm did not log vCPU 0's first entry: ${v.stderr}`);
    restore.firstEntry.push(Number(entry[1]));
    const q = new Vmm(...qemu.command(["-incoming", `exec:cat ${stream}`]));
    try {
      restore.qemu.push(await promptAnswered(q));
      sched.qemu.push(schedTimes(q.child.pid ?? 0));
    } finally {
      await q.kill();
    }
  }
  return {
    memMiB: options.memMiB,
    fillMiB,
    runs,
    virga: {
      snapshotMs: spread(saves.virga.map((s) => s.ms)),
      snapshotVmmMs: spread(saves.virga.map((s) => s.vmmMs)),
      ...sizes([path.join(template, "memory"), path.join(template, "state")]),
      restoreMs: spread(restore.virga),
      restoreCpuMs: spread(sched.virga.map((t) => t.cpuMs)),
      restoreRunQueueMs: spread(sched.virga.map((t) => t.waitMs)),
      firstEntryMs: spread(restore.firstEntry),
    },
    qemu: {
      snapshotMs: spread(saves.qemu.map((s) => s.ms)),
      snapshotVmmMs: spread(saves.qemu.map((s) => s.vmmMs)),
      ...sizes([stream]),
      restoreMs: spread(restore.qemu),
      restoreCpuMs: spread(sched.qemu.map((t) => t.cpuMs)),
      restoreRunQueueMs: spread(sched.qemu.map((t) => t.waitMs)),
    },
  };
}

/** "median (min–max)" */
export function shown(s: Spread, digits = 1): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

export function snapshotRows(r: SnapshotBenchResult): string[][] {
  const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
  const both = (label: string, pick: (side: SnapshotSide) => Spread, digits = 1): string[] => [
    label,
    shown(pick(r.virga), digits),
    shown(pick(r.qemu), digits),
  ];
  return [
    [
      `snapshot and restore: ${r.memMiB} MiB probe guest, ${r.fillMiB} MiB written (mem fill), ${r.runs} runs, median (min–max)`,
      "virga-vmm",
      "qemu",
    ],
    both("snapshot: command → completed (ms)", (s) => s.snapshotMs),
    both("snapshot: query-migrate total-time (ms)", (s) => s.snapshotVmmMs, 0),
    ["snapshot on disk (MiB)", mib(r.virga.diskBytes), mib(r.qemu.diskBytes)],
    [
      "snapshot files' size (MiB, virga-vmm's memory file is sparse)",
      mib(r.virga.apparentBytes),
      mib(r.qemu.apparentBytes),
    ],
    both("restore: process start → prompt answers (ms)", (s) => s.restoreMs),
    both("restore: CPU time of all threads until then (ms)", (s) => s.restoreCpuMs),
    both("restore: their time runnable, waiting for a CPU (ms)", (s) => s.restoreRunQueueMs),
    ["restore: inside the VMM, start → first vCPU entry (ms)", shown(r.virga.firstEntryMs, 2), "-"],
  ];
}
