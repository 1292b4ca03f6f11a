// `npm run bench`'s density section: what a managed VM costs when many run,
// and how fast many start at once, virga-vmm under virgad against Debian's
// QEMU microvm with the same probe guest.
//   memory: PSS, USS and RSS per VM beyond guest RAM with 1, 10 and 50 VMs,
//           each with one QMP client connected (virgad's; for QEMU the
//           bench's own). Virga's side counts every virga-vmm, any companion
//           control plane, and the control-plane host shared by all of them.
//   storm:  50 VMs started at once (one virgad API call each, concurrently;
//           50 QEMU processes spawned at once), time until every one answers
//           query-status "running" on its QMP socket.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { QmpClient } from "../src/qmp/client";
import { VirgadFixture } from "../test/daemon/harness";
import { childPids } from "../test/support/proc";
import { memoryOf, memoryOfTree, qmpRoundTrips, type QmpSample } from "./measure";

export interface DensitySample {
  vms: number;
  pssMiB: number;
  ussMiB: number;
  rssMiB: number;
}

export interface DensityResult {
  virga: DensitySample[];
  qemu: DensitySample[];
  /** ms from the first start request until all answered "running". */
  stormMs: { virga: number; qemu: number; vms: number };
  /** The control-plane host alone at the largest count (MiB). */
  hostPssMiB: number;
  /** Companion control planes seen at the largest count (0 when the host serves all). */
  companions: number;
  /** What one more QMP client per VM (a person's) adds to the host, per client (KiB). */
  extraClientKiB: { pss: number; rss: number };
  /** query-status round trips from one client to a VM the host serves (the first count's run). */
  hostQmp: QmpSample | null;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls query-status on a QMP socket until the VM reports running. */
async function waitRunning(socketPath: string, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const client = await QmpClient.connect(socketPath, 5000);
      try {
        await client.execute("qmp_capabilities");
        for (;;) {
          const status = (await client.execute("query-status")) as { status?: string };
          if (status.status === "running") return;
          if (Date.now() > deadline) throw new Error(`${socketPath}: still ${status.status}`);
          await sleep(20);
        }
      } finally {
        client.close();
      }
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(20);
    }
  }
}

function perVm(totals: { pss: number; uss: number; rss: number }, vms: number): DensitySample {
  return {
    vms,
    pssMiB: totals.pss / 1024 / vms,
    ussMiB: totals.uss / 1024 / vms,
    rssMiB: totals.rss / 1024 / vms,
  };
}

/** N VMs under a fresh virgad, started concurrently; their memory once all run. */
async function virgaRun(
  vms: number,
  guest: { cpus: number; memMiB: number; qmpSeconds: number },
): Promise<{
  qmp: QmpSample;
  sample: DensitySample;
  stormMs: number;
  hostPssMiB: number;
  companions: number;
  extraClientKiB: { pss: number; rss: number };
}> {
  const fx = new VirgadFixture();
  try {
    const virgad = await fx.start();
    const client = virgad.client();
    const ids = Array.from({ length: vms }, (_, i) => `d${i}`);
    const config = fx.probeConfig({ cpus: guest.cpus, memoryMiB: guest.memMiB });
    for (const id of ids) await client.vm.create.mutate({ id, config });
    const started = performance.now();
    const pids = await Promise.all(
      ids.map(async (id) => {
        const vm = await client.vm.start.mutate({ id });
        fx.track(vm.pid);
        await waitRunning(path.join(fx.runDir, "vms", id, "qmp.sock"));
        return vm.pid ?? 0;
      }),
    );
    const stormMs = performance.now() - started;
    // Let every VM settle at its prompt and virgad's connections idle.
    await sleep(1500);
    const hostPid = Number(readFileSync(path.join(fx.runDir, "control-host.pid"), "utf8"));
    const guestBytes = guest.memMiB * 1024 * 1024;
    const totals = { pss: 0, uss: 0, rss: 0 };
    let companions = 0;
    for (const pid of pids) {
      const m = memoryOfTree(pid, guestBytes);
      companions += childPids(pid).length;
      totals.pss += m.pssKiB - m.guestRamPssKiB;
      totals.uss += m.ussKiB;
      totals.rss += m.rssKiB - m.guestRamRssKiB;
    }
    // The host maps no guest RAM.
    const host = memoryOf(hostPid, Number.POSITIVE_INFINITY);
    totals.pss += host.pssKiB;
    totals.uss += host.ussKiB;
    totals.rss += host.rssKiB;
    // Each QMP client costs the host a session and a native reader thread.
    const people = await Promise.all(
      ids.map((id) => QmpClient.connect(path.join(fx.runDir, "vms", id, "qmp.sock"))),
    );
    await Promise.all(people.map((person) => person.execute("query-status")));
    await sleep(1000);
    const withPeople = memoryOf(hostPid, Number.POSITIVE_INFINITY);
    for (const person of people) person.close();
    const qmp = await qmpRoundTrips(
      path.join(fx.runDir, "vms", "d0", "qmp.sock"),
      guest.qmpSeconds * 1000,
    );
    return {
      qmp,
      sample: perVm(totals, vms),
      stormMs,
      hostPssMiB: host.pssKiB / 1024,
      companions,
      extraClientKiB: {
        pss: (withPeople.pssKiB - host.pssKiB) / vms,
        rss: (withPeople.rssKiB - host.rssKiB) / vms,
      },
    };
  } finally {
    await fx.cleanup();
  }
}

/** N QEMU microvms spawned at once, each with one QMP client; their memory once all run. */
async function qemuRun(
  vms: number,
  command: (socketPath: string) => [string, string[]],
  scratch: string,
  guestBytes: number,
): Promise<{ sample: DensitySample; stormMs: number }> {
  const processes: ChildProcess[] = [];
  const clients: QmpClient[] = [];
  try {
    const started = performance.now();
    const sockets = Array.from({ length: vms }, (_, i) => path.join(scratch, `qemu-${i}.sock`));
    for (const socketPath of sockets) {
      const [bin, args] = command(socketPath);
      processes.push(spawn(bin, args, { stdio: "ignore" }));
    }
    await Promise.all(
      sockets.map(async (socketPath) => {
        while (!existsSync(socketPath)) await sleep(10);
        await waitRunning(socketPath);
      }),
    );
    const stormMs = performance.now() - started;
    for (const socketPath of sockets) {
      const client = await QmpClient.connect(socketPath);
      clients.push(client);
      await client.execute("qmp_capabilities");
    }
    await sleep(1500);
    const totals = { pss: 0, uss: 0, rss: 0 };
    for (const child of processes) {
      const m = memoryOf(child.pid ?? 0, guestBytes);
      totals.pss += m.pssKiB - m.guestRamPssKiB;
      totals.uss += m.ussKiB;
      totals.rss += m.rssKiB - m.guestRamRssKiB;
    }
    return { sample: perVm(totals, vms), stormMs };
  } finally {
    for (const client of clients) client.close();
    await Promise.all(
      processes.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              resolve();
              return;
            }
            child.once("exit", () => {
              resolve();
            });
            child.kill("SIGKILL");
          }),
      ),
    );
  }
}

export async function runDensity(options: {
  counts: number[];
  cpus: number;
  memMiB: number;
  qmpSeconds: number;
  scratch: string;
  qemu: (socketPath: string) => [string, string[]];
  progress: (line: string) => void;
}): Promise<DensityResult> {
  const result: DensityResult = {
    virga: [],
    qemu: [],
    stormMs: { virga: 0, qemu: 0, vms: 0 },
    hostPssMiB: 0,
    companions: 0,
    extraClientKiB: { pss: 0, rss: 0 },
    hostQmp: null,
  };
  const guestBytes = options.memMiB * 1024 * 1024;
  for (const vms of options.counts) {
    options.progress(`density: ${vms} VM(s) under virgad`);
    const virga = await virgaRun(vms, options);
    options.progress(`density: ${vms} QEMU microvm(s)`);
    const qemu = await qemuRun(vms, options.qemu, options.scratch, guestBytes);
    result.virga.push(virga.sample);
    result.qemu.push(qemu.sample);
    // The largest count is the storm.
    result.stormMs = { virga: virga.stormMs, qemu: qemu.stormMs, vms };
    result.hostPssMiB = virga.hostPssMiB;
    result.companions = virga.companions;
    result.extraClientKiB = virga.extraClientKiB;
    result.hostQmp ??= virga.qmp;
  }
  return result;
}
