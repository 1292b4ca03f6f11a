// Measurement helpers for the benchmarks: process start → serial marker,
// proportional memory (PSS) from /proc, QMP round trips, statistics.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { QmpClient } from "../src/qmp/client";
import { childPids } from "../test/support/proc";

export interface BootSample {
  readyMs: number;
  pssKiB: number;
  rssKiB: number;
  /** Private (unshared) memory: what this process alone costs. */
  ussKiB: number;
  guestRamPssKiB: number;
  guestRamRssKiB: number;
}

/**
 * QEMU's microvm made the same machine as virga-vmm's: the six empty block
 * slots are six virtio-blk devices of capacity 0 (null-co, size 0) on
 * virtio-mmio version 2, so the guest does the same work under both, which
 * is what "the same guest" has to mean for a boot-time ratio. The benches
 * measure QEMU with no devices too and print it beside.
 */
export const QEMU_SAME_DISKS = [
  "-global",
  "virtio-mmio.force-legacy=false",
  ...[0, 1, 2, 3, 4, 5].flatMap((i) => [
    "-drive",
    `if=none,id=slot${i},driver=null-co,size=0`,
    "-device",
    `virtio-blk-device,drive=slot${i}`,
  ]),
];

/** QEMU's microvm with a kernel on the serial console, as both benches start it. */
export function qemuMicrovm(options: {
  machine: string;
  cpu: string;
  smp: string;
  memMiB: string;
  kernel: string;
  initrd?: string;
  append: string;
  extra?: string[];
}): [string, string[]] {
  return [
    "qemu-system-x86_64",
    [
      "-M",
      options.machine,
      "-enable-kvm",
      "-cpu",
      options.cpu,
      "-smp",
      options.smp,
      "-m",
      options.memMiB,
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-no-reboot",
      "-serial",
      "stdio",
      "-kernel",
      options.kernel,
      ...(options.initrd === undefined ? [] : ["-initrd", options.initrd]),
      "-append",
      options.append,
      ...(options.extra ?? []),
    ],
  ];
}

/** virga-vmm booting a kernel with its console on stdio, as the Linux benches start it. */
export function virgaKernelBoot(options: {
  machine: string;
  kernel: string;
  initrd: string;
  smp: string;
  memMiB: string;
  append: string;
}): string[] {
  return [
    "-machine",
    options.machine,
    "-kernel",
    options.kernel,
    "-initrd",
    options.initrd,
    "-smp",
    options.smp,
    "-m",
    options.memMiB,
    "-append",
    options.append,
    "-serial",
    "stdio",
  ];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? 0)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Prints rows as columns: the first left-aligned, the rest right-aligned. */
export function printTable(rows: string[][]): void {
  const columns = Math.max(...rows.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) =>
    Math.max(...rows.map((r) => r[c]?.length ?? 0)),
  );
  for (const row of rows) {
    console.log(
      row
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
        .join("  "),
    );
  }
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

interface Mapping {
  sizeKiB: number;
  rssKiB: number;
  pssKiB: number;
  privateKiB: number;
  anonymous: boolean;
}

function readMappings(pid: number): Mapping[] {
  const mappings: Mapping[] = [];
  let current: Mapping | null = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header !== null) {
      current = { sizeKiB: 0, rssKiB: 0, pssKiB: 0, privateKiB: 0, anonymous: header[1] === "0" };
      mappings.push(current);
      continue;
    }
    const field = /^(Size|Rss|Pss|Private_Clean|Private_Dirty):\s+(\d+) kB/.exec(line);
    if (field !== null && current !== null) {
      const value = Number(field[2]);
      if (field[1] === "Size") current.sizeKiB = value;
      else if (field[1] === "Rss") current.rssKiB = value;
      else if (field[1] === "Pss") current.pssKiB = value;
      else current.privateKiB += value;
    }
  }
  return mappings;
}

/**
 * Total PSS/RSS of a process and of its guest RAM: the anonymous mappings
 * at least as large as the guest's memory (QEMU and Virga both map guest
 * RAM as one region, QEMU's slightly larger for alignment).
 */
export function memoryOf(pid: number, guestBytes: number): Omit<BootSample, "readyMs"> {
  const mappings = readMappings(pid);
  const guestKiB = guestBytes / 1024;
  const guest = mappings.filter(
    (m) => m.anonymous && m.sizeKiB >= guestKiB && m.sizeKiB <= guestKiB * 1.1,
  );
  const sum = (list: Mapping[], key: "pssKiB" | "rssKiB" | "privateKiB") =>
    list.reduce((n, m) => n + m[key], 0);
  return {
    pssKiB: sum(mappings, "pssKiB"),
    rssKiB: sum(mappings, "rssKiB"),
    ussKiB: sum(mappings, "privateKiB") - sum(guest, "privateKiB"),
    guestRamPssKiB: sum(guest, "pssKiB"),
    guestRamRssKiB: sum(guest, "rssKiB"),
  };
}

/** memoryOf summed over a process and its descendants (virga-vmm's control plane). */
export function memoryOfTree(pid: number, guestBytes: number): Omit<BootSample, "readyMs"> {
  const total = memoryOf(pid, guestBytes);
  for (const child of childPids(pid)) {
    const part = memoryOfTree(child, guestBytes);
    total.pssKiB += part.pssKiB;
    total.rssKiB += part.rssKiB;
    total.ussKiB += part.ussKiB;
  }
  return total;
}

export interface StartedVmm {
  child: ChildProcess;
  /** ms from spawn to the marker on stdout; rejects on timeout or an earlier exit. */
  ready: Promise<number>;
  /** ms from spawn to the process's exit. */
  exited: Promise<number>;
}

/** Starts a VMM and watches its stdout for the marker. */
export function startVmm(
  command: string,
  args: string[],
  marker: string,
  timeoutMs: number,
): StartedVmm {
  const started = performance.now();
  const child: ChildProcess = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  let stderr = "";
  const exited = new Promise<number>((resolve) => {
    child.on("exit", () => {
      resolve(performance.now() - started);
    });
  });
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no '${marker}' within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
      if (output.includes(marker)) {
        clearTimeout(timer);
        resolve(performance.now() - started);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code}) before '${marker}': ${stderr}`));
    });
  });
  return { child, ready, exited };
}

/** Starts a VMM, waits for the marker on its stdout, measures, then ends it. */
export async function bootOnce(
  command: string,
  args: string[],
  marker: string,
  guestBytes: number,
  timeoutMs = 60000,
): Promise<BootSample> {
  const vmm = startVmm(command, args, marker, timeoutMs);
  try {
    const readyMs = await vmm.ready;
    // Let the guest settle at its prompt before reading memory.
    await new Promise((r) => setTimeout(r, 200));
    const memory = memoryOf(vmm.child.pid ?? 0, guestBytes);
    return { readyMs, ...memory };
  } finally {
    vmm.child.kill("SIGKILL");
    await vmm.exited;
  }
}

export interface QmpSample {
  perSecond: number;
  p50Us: number;
  p99Us: number;
  count: number;
}

/** Sequential query-status round trips from one client for durationMs. */
export async function qmpRoundTrips(socketPath: string, durationMs: number): Promise<QmpSample> {
  const client = await QmpClient.connect(socketPath);
  try {
    await client.execute("qmp_capabilities");
    for (let i = 0; i < 200; i++) await client.execute("query-status"); // warm up
    const latencies: number[] = [];
    const start = performance.now();
    while (performance.now() - start < durationMs) {
      const t = performance.now();
      await client.execute("query-status");
      latencies.push((performance.now() - t) * 1000);
    }
    const elapsed = (performance.now() - start) / 1000;
    return {
      perSecond: latencies.length / elapsed,
      p50Us: percentile(latencies, 50),
      p99Us: percentile(latencies, 99),
      count: latencies.length,
    };
  } finally {
    client.close();
  }
}
