// Clones from one snapshot template (part of `npm run bench`; alone:
// `npm run bench clones`). A probe guest boots, writes into `touch` MiB of
// its RAM (`mem touch`, so the template holds that much data), and is
// snapshotted (QMP migrate file:). Then, from that one template:
//   serial: N virga-vmm -incoming started at once; each is done when its
//           probe shell answers an Enter on its serial console (no QMP, so
//           no control plane: the VMM's own restore cost)
//   qmp:    the same, each done when QMP query-status says running (each
//           first client starts the VM's Node control plane)
//   virgad: vm.clone {count: N} through virgad, in process: clone
//           directories, console and QMP connected (QMP served by virgad's
//           control-plane host), cont; done when the call returns with
//           every clone running
// and the PSS of an idle clone (the guest's pages are shared through the
// template's page cache, copied only when written) against the PSS of the
// freshly booted VM that wrote the same memory.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Daemon } from "../src/daemon/daemon";
import { QmpClient } from "../src/qmp/client";
import { median } from "./measure";
import { connectWhenListening, sleep, Vmm, waitForFile } from "./vmm-process";

export interface CloneBenchOptions {
  vmmBin: string;
  probe: string;
  count: number;
  smp: number;
  memMiB: number;
  touchMiB: number;
}

interface FleetRun {
  /** From the first spawn to the last clone's answer. */
  allMs: number;
  clonesPerSecond: number;
  /** Each clone's own time from its spawn to its answer. */
  eachMedianMs: number;
  eachMaxMs: number;
}

export interface CloneBenchResult {
  count: number;
  memMiB: number;
  touchMiB: number;
  snapshotMs: number;
  templateMemoryFileMiB: number;
  serial: FleetRun;
  qmp: FleetRun;
  virgad: FleetRun;
  /** PSS of the virga-vmm process (no control plane). */
  freshVmPssMiB: number;
  idleClonePssMiB: number;
  /** The same with each clone's own Node control plane (started by its first QMP client). */
  idleCloneWithControlPlanePssMiB: number;
  /** A clone under virgad: its VMM and its share of the control-plane host serving all of them. */
  idleVirgadClonePssMiB: number;
}

/** PSS of one process (smaps_rollup), or of it and its children. */
function pssKiB(pid: number, withChildren = false): number {
  let total = 0;
  try {
    const rollup = readFile(`/proc/${pid}/smaps_rollup`);
    total = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
  } catch {
    return 0;
  }
  if (withChildren) {
    for (const child of readFile(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)) {
      if (child !== "") total += pssKiB(Number(child), true);
    }
  }
  return total;
}

function readFile(file: string): string {
  return readFileSync(file, "utf8");
}

function controlHostPid(runDir: string): number {
  try {
    return Number(readFileSync(path.join(runDir, "control-host.pid"), "utf8").trim()) || 0;
  } catch {
    return 0;
  }
}

function fleetRun(startedAt: number, spawned: number[], answered: number[]): FleetRun {
  const allMs = Math.max(...answered) - startedAt;
  const each = answered.map((t, i) => t - (spawned[i] ?? startedAt));
  return {
    allMs,
    clonesPerSecond: answered.length / (allMs / 1000),
    eachMedianMs: median(each),
    eachMaxMs: Math.max(...each),
  };
}

export async function runCloneBench(options: CloneBenchOptions): Promise<CloneBenchResult> {
  const scratch = mkdtempSync(path.join(tmpdir(), "virga-clone-bench-"));
  const machine = [
    "-machine",
    "microvm",
    "-kernel",
    options.probe,
    "-smp",
    String(options.smp),
    "-m",
    String(options.memMiB),
    "-append",
    "console=ttyS0",
    "-serial",
    "stdio",
  ];
  const running: Vmm[] = [];
  const killAll = async () => {
    await Promise.all(running.splice(0).map((vmm) => vmm.kill()));
  };
  try {
    // The template: a booted guest that wrote into `touchMiB` of its RAM.
    const template = path.join(scratch, "template");
    const sourceQmp = path.join(scratch, "source.sock");
    const source = new Vmm(options.vmmBin, [...machine, "-qmp", `unix:${sourceQmp},server,nowait`]);
    running.push(source);
    await source.waitFor("probe> ");
    source.type(`mem touch ${options.touchMiB}\n`);
    await source.waitFor("OK mem touch");
    await sleep(300);
    // Before any QMP client: the VMM alone, as the clones are measured.
    const freshVmPssMiB = pssKiB(source.child.pid ?? 0) / 1024;
    const qmp = await QmpClient.connect(sourceQmp);
    await qmp.execute("qmp_capabilities");
    const snapshotStart = performance.now();
    await qmp.execute("migrate", { uri: `file:${template}` });
    const snapshotMs = performance.now() - snapshotStart;
    qmp.close();
    await killAll();
    const templateMemoryFileMiB = (await stat(path.join(template, "memory"))).blocks / 2048;

    // Serial: the VMM's restore, N at once.
    let startedAt = performance.now();
    const serialClones: Vmm[] = [];
    for (let i = 0; i < options.count; i++) {
      const clone = new Vmm(options.vmmBin, [...machine, "-incoming", `file:${template}`]);
      clone.type("\n");
      serialClones.push(clone);
      running.push(clone);
    }
    const serialAnswered = await Promise.all(serialClones.map((c) => c.waitFor("probe> ")));
    const serial = fleetRun(
      startedAt,
      serialClones.map((c) => c.spawnedAt),
      serialAnswered,
    );
    await sleep(1000);
    const idleClonePssMiB = median(serialClones.map((c) => pssKiB(c.child.pid ?? 0))) / 1024;
    await killAll();

    // QMP: each clone answers query-status running (its control plane starts on connect).
    startedAt = performance.now();
    const qmpClones: Vmm[] = [];
    const qmpAnswered = await Promise.all(
      Array.from({ length: options.count }, async (_, i) => {
        const socket = path.join(scratch, `clone-${i}.sock`);
        const clone = new Vmm(options.vmmBin, [
          ...machine,
          "-incoming",
          `file:${template}`,
          "-qmp",
          `unix:${socket},server,nowait`,
        ]);
        qmpClones[i] = clone;
        running.push(clone);
        await waitForFile(socket);
        const client = await connectWhenListening(socket);
        try {
          await client.execute("qmp_capabilities");
          for (;;) {
            const status = (await client.execute("query-status")) as { status?: string };
            if (status.status === "running") return performance.now();
            await sleep(1);
          }
        } finally {
          client.close();
        }
      }),
    );
    const qmpRun = fleetRun(
      startedAt,
      qmpClones.map((c) => c.spawnedAt),
      qmpAnswered,
    );
    await sleep(1000);
    const idleCloneWithControlPlanePssMiB =
      median(qmpClones.map((c) => pssKiB(c.child.pid ?? 0, true))) / 1024;
    await killAll();

    const virgad = await virgadFleet(options, scratch);
    return {
      count: options.count,
      memMiB: options.memMiB,
      touchMiB: options.touchMiB,
      snapshotMs,
      templateMemoryFileMiB,
      serial,
      qmp: qmpRun,
      virgad: virgad.run,
      freshVmPssMiB,
      idleClonePssMiB,
      idleCloneWithControlPlanePssMiB,
      idleVirgadClonePssMiB: virgad.pssPerCloneMiB,
    };
  } finally {
    await killAll();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** vm.snapshot then vm.clone {count} through a virgad run in this process. */
async function virgadFleet(
  options: CloneBenchOptions,
  scratch: string,
): Promise<{ run: FleetRun; pssPerCloneMiB: number }> {
  const images = path.join(scratch, "images");
  mkdirSync(images);
  const kernel = path.join(images, "probe.elf");
  copyFileSync(options.probe, kernel);
  // A short run directory: socket paths are limited to 107 bytes.
  const runDir = mkdtempSync(path.join(tmpdir(), "vcb-"));
  const daemon = await Daemon.open({ runDir, imageDirs: [images], vmmBin: options.vmmBin });
  try {
    await daemon.create({
      id: "source",
      config: {
        kernel,
        append: "console=ttyS0",
        smp: {
          cpus: options.smp,
          maxCpus: options.smp,
          sockets: 1,
          cores: options.smp,
          threads: 1,
        },
        memoryBytes: options.memMiB * 1024 * 1024,
      },
    });
    const source = daemon.vm("source");
    await source.start();
    const seen = (text: string) => source.relay.lastLines(5).join("\n").includes(text);
    for (let waited = 0; !seen("probe> "); waited += 10) {
      if (waited > 30000) throw new Error("the virgad source VM did not reach its prompt");
      await sleep(10);
    }
    source.consoleInput(`mem touch ${options.touchMiB}\n`);
    for (let waited = 0; !seen("OK mem touch"); waited += 10) {
      if (waited > 30000) throw new Error("the virgad source VM did not touch its memory");
      await sleep(10);
    }
    await daemon.snapshot({ id: "source", template: "bench" });
    const startedAt = performance.now();
    const report = await daemon.clone({ template: "bench", count: options.count });
    const done = performance.now();
    if (report.failed > 0) {
      throw new Error(
        `virgad: ${report.failed} clones failed: ${report.clones.find((c) => c.error)?.error}`,
      );
    }
    await sleep(1000);
    // Each clone's VMM, and its share of the control-plane host that serves every VM's QMP.
    const hostShare = pssKiB(controlHostPid(runDir), true) / daemon.list().length;
    const clonePss = median(report.clones.map((c) => pssKiB(c.pid ?? 0)));
    return {
      run: {
        allMs: done - startedAt,
        clonesPerSecond: report.started / ((done - startedAt) / 1000),
        eachMedianMs: Number.NaN,
        eachMaxMs: Number.NaN,
      },
      pssPerCloneMiB: (clonePss + hostShare) / 1024,
    };
  } finally {
    for (const vm of daemon.list()) {
      if (vm.pid !== null)
        await daemon
          .vm(vm.id)
          .kill()
          .catch(() => undefined);
    }
    await daemon.close();
    // The host outlives virgad by design; this one was the bench's.
    const host = controlHostPid(runDir);
    if (host > 0) process.kill(host, "SIGKILL");
    rmSync(runDir, { recursive: true, force: true });
  }
}

/** The clone figures as table rows (label, value). */
export function cloneRows(r: CloneBenchResult): string[][] {
  const ms = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(1));
  return [
    [
      `clones from one template: ${r.count} at once, ${r.memMiB} MiB guest, ${r.touchMiB} MiB written before the snapshot`,
      "",
    ],
    ["snapshot (migrate file:) of the source (ms)", ms(r.snapshotMs)],
    ["template memory file on disk (MiB, sparse)", r.templateMemoryFileMiB.toFixed(1)],
    [
      "serial: all answering (ms) / clones per second",
      `${ms(r.serial.allMs)} / ${r.serial.clonesPerSecond.toFixed(0)}`,
    ],
    ["serial: each, median / max (ms)", `${ms(r.serial.eachMedianMs)} / ${ms(r.serial.eachMaxMs)}`],
    [
      "qmp running: all (ms) / clones per second",
      `${ms(r.qmp.allMs)} / ${r.qmp.clonesPerSecond.toFixed(0)}`,
    ],
    ["qmp running: each, median / max (ms)", `${ms(r.qmp.eachMedianMs)} / ${ms(r.qmp.eachMaxMs)}`],
    [
      "virgad vm.clone: all running (ms) / clones per second",
      `${ms(r.virgad.allMs)} / ${r.virgad.clonesPerSecond.toFixed(0)}`,
    ],
    ["PSS, freshly booted VM that wrote the memory (MiB)", r.freshVmPssMiB.toFixed(1)],
    ["PSS, idle clone (MiB)", r.idleClonePssMiB.toFixed(1)],
    [
      "PSS, idle clone with its own QMP control plane (MiB)",
      r.idleCloneWithControlPlanePssMiB.toFixed(1),
    ],
    [
      "PSS, idle clone under virgad, with its share of the control-plane host (MiB)",
      r.idleVirgadClonePssMiB.toFixed(1),
    ],
  ];
}
