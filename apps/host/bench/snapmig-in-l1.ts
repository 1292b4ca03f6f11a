// The snapshot and migration section of `npm run bench linux`, run inside
// L1 (real KVM): the Debian guest with its shell up, under each VMM with its
// own flags, in rounds of one VM (or one pair) per VMM, alternating.
//   snapshot: the running guest saved to a file (virga-vmm: `migrate
//             file:DIR`, which pauses it; QEMU 7.2 has no file: URI, so
//             `stop` then `migrate exec:cat > FILE`), from the first command
//             to `completed`, and what it takes on disk
//   restore:  a new process with `-incoming` on that file, from spawn to the
//             guest's shell answering a line typed on its console (QEMU
//             restores a VM saved paused as paused: its time includes the
//             QMP `cont` that resumes it)
//   migrate:  the guest (with `virga-io dirty` rewriting memory at a set
//             rate) moved over a unix socket to a second process of the same
//             VMM, both with a 50 ms downtime limit: total time and downtime
//             as the source's query-migrate reports them, then the
//             destination's shell must answer
import { spawn } from "node:child_process";
import { readdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import type { QmpClient } from "../src/qmp/client";
import { guestScenario, sendScenario } from "../test/linux/guest-scenario";
import { connectQmp } from "../test/support/guest";
import { SerialConsole } from "../test/support/console";
import { bootGuest, stop, type DeviceVmm, type GuestFiles } from "./devices-in-l1";
import { median } from "./measure";

const TIMEOUT_MS = 180000;
// A restore that needs more than this has failed, under emulation too.
const RESTORE_MS = 60000;

/** How one VMM saves to a file and starts from one. */
export interface SnapshotVmm {
  vmm: DeviceVmm;
  /** Where a snapshot goes in `scratch`, and the URIs that write and read it. */
  snapshotTarget(scratch: string): { target: string; save: string; load: string };
  /** Whether `migrate` pauses a running VM itself (else `stop` is sent first). */
  pausesItself: boolean;
  /** Whether a restored VM waits for `cont` (QEMU keeps the saved run state). */
  restoresPaused: boolean;
}

export function virgaSnapshotVmm(vmm: DeviceVmm): SnapshotVmm {
  return {
    vmm,
    pausesItself: true,
    restoresPaused: false,
    snapshotTarget: (scratch) => {
      const target = path.join(scratch, "virga-snapshot");
      return { target, save: `file:${target}`, load: `file:${target}` };
    },
  };
}

export function qemuSnapshotVmm(vmm: DeviceVmm): SnapshotVmm {
  return {
    vmm,
    pausesItself: false,
    restoresPaused: true,
    snapshotTarget: (scratch) => {
      const target = path.join(scratch, "qemu-snapshot");
      return { target, save: `exec:cat > ${target}`, load: `exec:cat ${target}` };
    },
  };
}

export interface SnapMigResult {
  snapshotMs: number;
  /** Bytes the snapshot occupies on L1's tmpfs (a sparse file counts what it holds). */
  snapshotBytes: number;
  restoreMs: number;
  migrateTotalMs: number;
  migrateDowntimeMs: number;
  migrateMiB: number;
  /** Rate the guest's writer reached while the migration ran (MiB/s). */
  dirtyMiBps: number;
  samples: Record<string, number[]>;
}

interface MigrateInfo {
  status: string;
  "total-time"?: number;
  downtime?: number;
  "error-desc"?: string;
  ram?: { transferred: number };
}

function diskUsage(target: string): number {
  const files = statSync(target).isDirectory()
    ? readdirSync(target).map((name) => path.join(target, name))
    : [target];
  return files.reduce((sum, file) => sum + statSync(file).blocks * 512, 0);
}

async function untilDone(qmp: QmpClient, timeoutMs: number): Promise<MigrateInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as MigrateInfo;
    if (["completed", "failed", "cancelled"].includes(info.status)) return info;
    if (Date.now() > deadline) {
      await qmp.execute("migrate_cancel");
      throw new Error(`migration not done within ${timeoutMs} ms: ${JSON.stringify(info)}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function qmpOf(socket: string): Promise<QmpClient> {
  const qmp = await connectQmp(socket, undefined, TIMEOUT_MS);
  await qmp.execute("qmp_capabilities");
  return qmp;
}

const qmpFlags = (socket: string): string[] => ["-qmp", `unix:${socket},server,nowait`];

/** Once the incoming state is loaded, resumes the VM. */
async function contWhenLoaded(socket: string): Promise<void> {
  const qmp = await qmpOf(socket);
  try {
    for (;;) {
      const { status } = (await qmp.execute("query-status")) as { status: string };
      if (status !== "inmigrate") {
        if (status !== "running") await qmp.execute("cont");
        return;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    qmp.close();
  }
}

/** Spawn → the restored guest's shell echoes a computed line. */
async function restoreOnce(
  command: string,
  args: string[],
  contSocket: string | null,
): Promise<number> {
  const started = performance.now();
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  const serial = new SerialConsole();
  serial.attach(child.stdout, child.stdin);
  child.stdin.on("error", () => undefined);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  try {
    // Typed every 100 ms until it answers (the figure's resolution): under
    // QEMU a line typed once at spawn, before the incoming state is loaded,
    // was never answered.
    const typing = setInterval(() => {
      serial.send("echo restored-$((6*7))");
    }, 100);
    const ended = exited.then((code) => {
      throw new Error(`${command} exited (${String(code)}) before the shell answered: ${stderr}`);
    });
    ended.catch(() => undefined);
    try {
      if (contSocket !== null) await Promise.race([contWhenLoaded(contSocket), ended]);
      await Promise.race([serial.waitFor(/restored-42/, RESTORE_MS), ended]);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new Error(
        `${why}\n--- console (end):\n${serial.text.slice(-600)}\n--- stderr:\n${stderr.slice(-600)}`,
      );
    } finally {
      clearInterval(typing);
    }
    return performance.now() - started;
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

async function snapshotRound(
  one: SnapshotVmm,
  files: GuestFiles,
  scratch: string,
): Promise<{ snapshotMs: number; snapshotBytes: number; restoreMs: number }> {
  const { target, save, load } = one.snapshotTarget(scratch);
  rmSync(target, { recursive: true, force: true });
  const socket = path.join(scratch, `${one.vmm.key}-snap.sock`);
  const args = one.vmm.args(files, [], null);
  const guest = await bootGuest(one.vmm.command, [...args, ...qmpFlags(socket)]);
  let snapshotMs: number;
  try {
    const qmp = await qmpOf(socket);
    const started = performance.now();
    if (!one.pausesItself) await qmp.execute("stop");
    await qmp.execute("migrate", { uri: save }, TIMEOUT_MS);
    const info = await untilDone(qmp, TIMEOUT_MS);
    snapshotMs = performance.now() - started;
    if (info.status !== "completed")
      throw new Error(`snapshot ${info.status}: ${JSON.stringify(info)}`);
    qmp.close();
  } finally {
    await stop(guest);
  }
  // QEMU's `cat` may still be writing after the VMM reported completion.
  let snapshotBytes = diskUsage(target);
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const now = diskUsage(target);
    if (now === snapshotBytes) break;
    snapshotBytes = now;
  }
  const restoreSocket = path.join(scratch, `${one.vmm.key}-restore.sock`);
  const restoreMs = await restoreOnce(
    one.vmm.command,
    [...args, ...qmpFlags(restoreSocket), "-incoming", load],
    one.restoresPaused ? restoreSocket : null,
  );
  rmSync(target, { recursive: true, force: true });
  return { snapshotMs, snapshotBytes, restoreMs };
}

async function migrateRound(
  one: SnapshotVmm,
  files: GuestFiles,
  scratch: string,
  dirty: { mib: number; mibPerS: number },
): Promise<{ totalMs: number; downtimeMs: number; mib: number; dirtyMiBps: number }> {
  const sourceSocket = path.join(scratch, `${one.vmm.key}-src.sock`);
  const destSocket = path.join(scratch, `${one.vmm.key}-dst.sock`);
  const uri = `unix:${path.join(scratch, `${one.vmm.key}-mig.sock`)}`;
  rmSync(uri.slice(5), { force: true });
  const args = one.vmm.args(files, [], null);
  const source = await bootGuest(one.vmm.command, [...args, ...qmpFlags(sourceSocket)]);
  const destChild = spawn(one.vmm.command, [...args, ...qmpFlags(destSocket), "-incoming", uri], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const destSerial = new SerialConsole();
  destSerial.attach(destChild.stdout, destChild.stdin);
  destChild.stdin.on("error", () => undefined);
  const destExited = new Promise<number | null>((resolve) => destChild.on("exit", resolve));
  try {
    const qmp = await qmpOf(sourceSocket);
    const destQmp = await qmpOf(destSocket);
    for (const client of [qmp, destQmp])
      await client.execute("migrate-set-parameters", { "downtime-limit": 50 });
    destQmp.close();
    await guestScenario(source.console, `dirty ${dirty.mib}M ${dirty.mibPerS}`, TIMEOUT_MS);
    await qmp.execute("migrate", { uri });
    const info = await untilDone(qmp, TIMEOUT_MS);
    if (info.status !== "completed")
      throw new Error(`migration ${info.status}: ${JSON.stringify(info)}`);
    qmp.close();
    // The guest runs at the destination: its shell answers there.
    sendScenario(destSerial, "dirty-stop");
    const line = await destSerial.waitFor(/VIRGA-GUEST dirty-stop .*MiB\/s=([\d.]+)/, TIMEOUT_MS);
    return {
      totalMs: info["total-time"] ?? NaN,
      downtimeMs: info.downtime ?? NaN,
      mib: (info.ram?.transferred ?? NaN) / 1048576,
      dirtyMiBps: Number(line[1]),
    };
  } finally {
    await stop(source);
    destChild.kill("SIGKILL");
    await destExited;
  }
}

/** Rounds of each VMM, alternating; each figure the median of its rounds. */
export async function runSnapMigBench(
  vmms: SnapshotVmm[],
  files: GuestFiles,
  scratch: string,
  options: { reps: number; dirtyMiB: number; dirtyMiBps: number },
  log: (line: string) => void,
): Promise<Record<string, SnapMigResult>> {
  const samples = new Map<string, Record<string, number[]>>();
  for (const one of vmms)
    samples.set(one.vmm.key, {
      snapshotMs: [],
      snapshotBytes: [],
      restoreMs: [],
      migrateTotalMs: [],
      migrateDowntimeMs: [],
      migrateMiB: [],
      dirtyMiBps: [],
    });
  for (let i = 0; i < options.reps; i++) {
    for (const one of vmms) {
      const s = samples.get(one.vmm.key) ?? {};
      const push = (key: string, value: number) => (s[key] ??= []).push(value);
      const snap = await snapshotRound(one, files, scratch);
      push("snapshotMs", snap.snapshotMs);
      push("snapshotBytes", snap.snapshotBytes);
      push("restoreMs", snap.restoreMs);
      const mig = await migrateRound(one, files, scratch, {
        mib: options.dirtyMiB,
        mibPerS: options.dirtyMiBps,
      });
      push("migrateTotalMs", mig.totalMs);
      push("migrateDowntimeMs", mig.downtimeMs);
      push("migrateMiB", mig.mib);
      push("dirtyMiBps", mig.dirtyMiBps);
      log(
        `round ${i + 1} ${one.vmm.key}: snapshot ${snap.snapshotMs.toFixed(0)} ms, ` +
          `${(snap.snapshotBytes / 1048576).toFixed(1)} MiB; restore to shell ${snap.restoreMs.toFixed(0)} ms; ` +
          `migration ${mig.totalMs} ms, downtime ${mig.downtimeMs} ms, ${mig.mib.toFixed(1)} MiB sent ` +
          `(guest writing ${mig.dirtyMiBps} MiB/s)`,
      );
    }
  }
  const result: Record<string, SnapMigResult> = {};
  for (const [key, s] of samples) {
    const m = (name: string) => median(s[name] ?? []);
    result[key] = {
      snapshotMs: m("snapshotMs"),
      snapshotBytes: m("snapshotBytes"),
      restoreMs: m("restoreMs"),
      migrateTotalMs: m("migrateTotalMs"),
      migrateDowntimeMs: m("migrateDowntimeMs"),
      migrateMiB: m("migrateMiB"),
      dirtyMiBps: m("dirtyMiBps"),
      samples: s,
    };
  }
  return result;
}
