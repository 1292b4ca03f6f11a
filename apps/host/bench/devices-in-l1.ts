// The device section of `npm run bench linux`, run inside L1 (real KVM):
// the same guest-side measurements under each VMM, each with its own flags,
// in rounds of one boot per VMM, alternating.
//   net:  virtio-net TCP throughput guest → L1 and L1 → guest over a tap
//   blk:  virtio-blk O_DIRECT sequential read/write and 4 KiB random reads
//         in the guest, on disk images in L1's tmpfs
//   mmio: time per read of an idle virtio-mmio slot's InterruptStatus
//         (a userspace exit), idle and with another disk kept busy
// A VMM that refuses the NIC's flags gets its net rows marked unsupported
// with its own error line (nothing estimated); the other rows run without.
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  fields,
  type GuestConsole,
  guestScenario,
  numberField,
  scenarioResult,
  sendScenario,
} from "../test/linux/guest-scenario";
import { createTap, l1Receive, l1Send } from "../test/linux/l1-net";
import { SerialConsole } from "../test/support/console";
import { QmpClient } from "../src/qmp/client";
import { median, qemuMicrovm, virgaKernelBoot } from "./measure";
import {
  countsPerMiB,
  describeCounts,
  type NetCounts,
  readGuestNet,
  readVmmNet,
  type VmmNetReading,
} from "./net-counts";

const APPEND = "console=ttyS0 quiet virga.action=stay";
const L1_ADDRESS = "192.168.100.1";
const GUEST_ADDRESS = "192.168.100.2";
const DISK_BYTES = 256 * 1024 * 1024;

export interface GuestFiles {
  kernel: string;
  initrd: string;
  memMiB: string;
  /**
   * Two, so that the MMIO loop and the other disk's load run on vCPUs of
   * their own and meet only inside the VMM (one vCPU would time-share them).
   */
  smp: string;
}

/** How one VMM is started with a NIC on a tap and raw disks. */
export interface DeviceVmm {
  key: "virga" | "qemu";
  command: string;
  args(files: GuestFiles, disks: string[], tap: string | null): string[];
  /**
   * A free slot to time, where the guest cannot find one itself: QEMU's
   * microvm announces only the transports it filled, all in one page that
   * their drivers hold; its first transport (0xfeb00000) is empty and in a
   * page of its own. virga-vmm announces every slot 4 KiB apart, and the
   * guest frees an empty block slot.
   */
  mmioAddress?: string;
  /** Flags giving the VMM a QMP socket whose virga-query-devices has NIC counters (virga-vmm). */
  countersQmp?: (socket: string) => string[];
}

export function virgaDeviceVmm(vmmBin: string): DeviceVmm {
  return {
    key: "virga",
    command: vmmBin,
    args: (files, disks, tap) => [
      ...virgaKernelBoot({ machine: "microvm", ...files, append: APPEND }),
      // direct=off: L1's 6.1 kernel has no O_DIRECT on tmpfs (EINVAL), and
      // QEMU's default cache mode goes through L1's page cache the same way.
      ...disks.flatMap((file, i) => [
        "-drive",
        `file=${file},id=blk${i},readonly=off,direct=off`,
        "-device",
        `virtio-blk-device,drive=blk${i}`,
      ]),
      ...(tap === null
        ? []
        : ["-netdev", `tap,id=n0,ifname=${tap}`, "-device", "virtio-net-device,netdev=n0"]),
    ],
    countersQmp: (socket) => ["-qmp", `unix:${socket},server,nowait`],
  };
}

export const qemuDeviceVmm: DeviceVmm = {
  key: "qemu",
  command: "qemu-system-x86_64",
  mmioAddress: "0xfeb00000",
  args: (files, disks, tap) =>
    qemuMicrovm({
      machine: "microvm,rtc=on",
      cpu: "host",
      smp: files.smp,
      memMiB: files.memMiB,
      kernel: files.kernel,
      initrd: files.initrd,
      append: APPEND,
      extra: [
        // virtio-mmio version 2, as virga-vmm's slots.
        "-global",
        "virtio-mmio.force-legacy=false",
        ...disks.flatMap((file, i) => [
          "-drive",
          `file=${file},if=none,id=blk${i},format=raw`,
          "-device",
          `virtio-blk-device,drive=blk${i}`,
        ]),
        ...(tap === null
          ? []
          : [
              "-netdev",
              `tap,id=n0,ifname=${tap},script=no,downscript=no,vhost=off`,
              "-device",
              "virtio-net-device,netdev=n0",
            ]),
      ],
    })[1],
};

type Unsupported = { supported: false; reason: string };
export interface NetResult {
  supported: true;
  guestToL1MBps: number;
  l1ToGuestMBps: number;
  samples: { guestToL1: number[]; l1ToGuest: number[] };
  /** Per round: counts per MiB moved (net-counts.ts). */
  counts: { guestToL1: NetCounts; l1ToGuest: NetCounts }[];
}
export interface BlkResult {
  seqReadMBps: number;
  seqWriteMBps: number;
  randRead4kIops1: number;
  randRead4kIops4: number;
  randRead4kLatencyUs1: number;
  samples: Record<string, number[]>;
}
export interface MmioSample {
  slot: string;
  medianUs: number;
  p99Us: number;
  minUs: number;
  loadMBps?: number;
}
export interface MmioResult {
  idle: MmioSample;
  loaded: MmioSample;
}
export interface DeviceResult {
  net: NetResult | Unsupported;
  blk: BlkResult;
  mmio: MmioResult;
  /** Set when the first run failed and these figures are from a second one. */
  firstAttemptError?: string;
}

export interface BootedGuest {
  child: ChildProcess;
  /** The serial console; its waits fail as soon as the VMM has exited. */
  console: GuestConsole;
  text: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts the VMM; resolves once the guest's shell is up, or rejects with the VMM's stderr. */
export async function bootGuest(command: string, args: string[]): Promise<BootedGuest> {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  const serial = new SerialConsole();
  serial.attach(child.stdout, child.stdin);
  child.stdin.on("error", () => undefined);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  const early = exited.then((code) => {
    throw new VmmExited(code, stderr.trim());
  });
  early.catch(() => undefined);
  // A guest that reset or a VMM that crashed ends every wait at once.
  const console: GuestConsole = {
    send: (line) => {
      serial.send(line);
    },
    waitFor: (pattern, timeoutMs) => Promise.race([serial.waitFor(pattern, timeoutMs), early]),
  };
  try {
    await console.waitFor(/VIRGA-GUEST action=stay/, 180000);
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    throw error;
  }
  return { child, console, text: () => serial.text, stderr: () => stderr, exited };
}

/** The VMM ended: before the guest came up (a refused flag), or while measuring. */
class VmmExited extends Error {
  constructor(
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`the VMM exited (${String(code)}): ${stderr || "(no stderr)"}`);
  }
}

/** An error met while measuring, with the guest's console and the VMM's stderr. */
export function withTranscript(key: string, guest: BootedGuest, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  return new Error(
    `${key}: ${message}\n--- console:\n${guest.text().slice(-3000)}\n--- stderr:\n${guest.stderr()}`,
  );
}

export async function stop(guest: BootedGuest): Promise<void> {
  guest.child.kill("SIGKILL");
  await guest.exited;
}

/** The TCP stream's MB/s each way, and the counts behind each. */
interface NetRound {
  guestToL1: number;
  l1ToGuest: number;
  counts: { guestToL1: NetCounts; l1ToGuest: NetCounts };
}

/** One round's figures for one VMM: one boot, each measurement once. */
interface Round {
  net: NetRound | Unsupported;
  blk: { seqRead: number; seqWrite: number; rand1: number; rand4: number; latency1: number };
  mmio: MmioResult;
}

/** Where the guest runs its NIC's interrupt and the stream's task; unset: where it chooses. */
export interface NetPlacement {
  irqCpu?: number;
  taskCpu?: number;
}

async function place(guest: BootedGuest, placement: NetPlacement): Promise<void> {
  if (placement.irqCpu !== undefined) {
    guest.console.send(
      "d=$(basename $(readlink /sys/class/net/eth0/device)); " +
        'irq=$(awk -v d=$d \'$NF == d { sub(":", "", $1); print $1; exit }\' /proc/interrupts); ' +
        `echo ${(1 << placement.irqCpu).toString(16)} > /proc/irq/$irq/smp_affinity; ` +
        // An IO-APIC interrupt moves when it next fires: some traffic first.
        `ping -c 2 -W 2 ${L1_ADDRESS} >/dev/null; ` +
        "echo VIRGA-PLACED irq=$irq cpus=$(cat /proc/irq/$irq/effective_affinity_list) end",
    );
    const match = await guest.console.waitFor(/VIRGA-PLACED irq=(\d+) cpus=([\d,-]*) end/, 30000);
    if (match[2] !== String(placement.irqCpu))
      throw new Error(
        `the guest put the NIC's interrupt ${match[1] ?? "?"} on CPU ${match[2] ?? "?"}, not ${placement.irqCpu}`,
      );
  }
  if (placement.taskCpu !== undefined) {
    // The console's shell, and so every command it starts from now on.
    guest.console.send(
      `taskset -p ${(1 << placement.taskCpu).toString(16)} $$ >/dev/null && echo VIRGA-PLACED task end`,
    );
    await guest.console.waitFor(/VIRGA-PLACED task end/, 30000);
  }
}

async function measureNet(
  guest: BootedGuest,
  mib: number,
  qmp: QmpClient | null,
  placement: NetPlacement,
): Promise<NetRound> {
  await guestScenario(guest.console, `net-up eth0 ${GUEST_ADDRESS}/24`);
  await place(guest, placement);
  await guestScenario(guest.console, `ping ${L1_ADDRESS} 2`);
  const vmmReading = (): Promise<VmmNetReading | undefined> =>
    qmp === null ? Promise.resolve(undefined) : readVmmNet(qmp);
  // Read before and after each stream, outside its clock.
  const reading = async () => ({
    guest: await readGuestNet(guest.console),
    vmm: await vmmReading(),
  });
  const counts = (before: Awaited<ReturnType<typeof reading>>, after: typeof before): NetCounts =>
    countsPerMiB(
      mib,
      [before.guest, after.guest],
      before.vmm && after.vmm ? [before.vmm, after.vmm] : undefined,
    );
  // guest → L1: L1's receiver clock counts what arrived.
  const receiver = l1Receive(5001);
  await receiver.listening;
  const beforeSend = await reading();
  await guestScenario(guest.console, `io tcp-send ${L1_ADDRESS} 5001 ${mib}`, 180000);
  const guestToL1 = Number((await receiver.result)["MB/s"]);
  const afterSend = await reading();
  // L1 → guest: the guest's receiver clock.
  sendScenario(guest.console, "io tcp-recv 5002");
  await guest.console.waitFor(/VIRGA-IO tcp-recv listening/, 60000);
  await l1Send(GUEST_ADDRESS, 5002, mib);
  const l1ToGuest = numberField(await scenarioResult(guest.console, "io", 180000), "MB/s");
  const afterRecv = await reading();
  return {
    guestToL1,
    l1ToGuest,
    counts: { guestToL1: counts(beforeSend, afterSend), l1ToGuest: counts(afterSend, afterRecv) },
  };
}

/** A QMP connection for the VMM's own counters, or null (QEMU's have none). */
async function countersClient(socket: string | null): Promise<QmpClient | null> {
  if (socket === null) return null;
  // The first connection starts the control plane, which takes a few seconds in L1.
  return QmpClient.connect(socket, 60000);
}

async function measureBlk(guest: BootedGuest): Promise<Round["blk"]> {
  const run = (command: string): Promise<string> => guestScenario(guest.console, command, 180000);
  const seqRead = numberField(await run("io seq-read /dev/vda 128 1M"), "MB/s");
  const seqWrite = numberField(await run("io seq-write /dev/vda 128 1M"), "MB/s");
  const depth1 = await run("io rand-read /dev/vda 5 1");
  const rand4 = numberField(await run("io rand-read /dev/vda 5 4"), "IOPS");
  return {
    seqRead,
    seqWrite,
    rand1: numberField(depth1, "IOPS"),
    rand4,
    latency1: numberField(depth1, "latency-us"),
  };
}

async function measureMmio(guest: BootedGuest, vmm: DeviceVmm): Promise<MmioResult> {
  const one = async (load: string): Promise<MmioSample> => {
    const line = await guestScenario(
      guest.console,
      `mmio-lat 20000 ${load} ${vmm.mmioAddress ?? ""}`.trim(),
      180000,
    );
    const f = fields(line);
    return {
      slot: `${f.slot ?? "?"} ${f.addr ?? ""}`.trim(),
      medianUs: numberField(line, "median-us"),
      p99Us: numberField(line, "p99-us"),
      minUs: numberField(line, "min-us"),
      ...(load === "-" ? {} : { loadMBps: numberField(line, "load-MB/s") }),
    };
  };
  return { idle: await one("-"), loaded: await one("/dev/vdb") };
}

/** One round for one VMM: boots it with a NIC (or, when it refuses one, without) and measures. */
async function measureRound(
  vmm: DeviceVmm,
  files: GuestFiles,
  disks: string[],
  tap: string,
  mib: number,
  placement: NetPlacement,
): Promise<Round> {
  let refused: string | null = null;
  let guest: BootedGuest;
  const socket =
    vmm.countersQmp === undefined ? null : path.join(path.dirname(disks[0] ?? "."), "counters.qmp");
  const qmpArgs = socket === null || vmm.countersQmp === undefined ? [] : vmm.countersQmp(socket);
  if (socket !== null) rmSync(socket, { force: true });
  try {
    guest = await bootGuest(vmm.command, [...vmm.args(files, disks, tap), ...qmpArgs]);
  } catch (error) {
    if (!(error instanceof VmmExited) || error.code === 0) throw error;
    // The refusal as the VMM words it; the other rows run without a NIC.
    refused = error.stderr.split("\n")[0] ?? error.message;
    guest = await bootGuest(vmm.command, [...vmm.args(files, disks, null), ...qmpArgs]);
  }
  let qmp: QmpClient | null = null;
  try {
    qmp = await countersClient(socket);
    const net =
      refused === null
        ? await measureNet(guest, mib, qmp, placement)
        : { supported: false as const, reason: refused };
    return { net, blk: await measureBlk(guest), mmio: await measureMmio(guest, vmm) };
  } catch (error) {
    throw withTranscript(vmm.key, guest, error);
  } finally {
    qmp?.close();
    await stop(guest);
  }
}

/** Medians over the rounds, with every round's figure kept. */
function summarise(rounds: Round[]): DeviceResult {
  const of = <T>(pick: (r: Round) => T): T[] => rounds.map(pick);
  const refusal = rounds.flatMap((r) => ("supported" in r.net ? [r.net] : []))[0];
  const nets = rounds.flatMap((r) => ("supported" in r.net ? [] : [r.net]));
  const net: NetResult | Unsupported = refusal ?? {
    supported: true,
    guestToL1MBps: median(nets.map((n) => n.guestToL1)),
    l1ToGuestMBps: median(nets.map((n) => n.l1ToGuest)),
    samples: {
      guestToL1: nets.map((n) => n.guestToL1),
      l1ToGuest: nets.map((n) => n.l1ToGuest),
    },
    counts: nets.map((n) => n.counts),
  };
  const blk = of((r) => r.blk);
  const pick = (key: keyof Round["blk"]): number[] => blk.map((b) => b[key]);
  const mmio = (which: "idle" | "loaded"): MmioSample => {
    const samples = of((r) => r.mmio[which]);
    const loads = samples.flatMap((m) => (m.loadMBps === undefined ? [] : [m.loadMBps]));
    return {
      slot: samples[0]?.slot ?? "?",
      medianUs: median(samples.map((m) => m.medianUs)),
      p99Us: median(samples.map((m) => m.p99Us)),
      minUs: Math.min(...samples.map((m) => m.minUs)),
      ...(loads.length === 0 ? {} : { loadMBps: median(loads) }),
    };
  };
  return {
    net,
    blk: {
      seqReadMBps: median(pick("seqRead")),
      seqWriteMBps: median(pick("seqWrite")),
      randRead4kIops1: median(pick("rand1")),
      randRead4kIops4: median(pick("rand4")),
      randRead4kLatencyUs1: median(pick("latency1")),
      samples: {
        seqRead: pick("seqRead"),
        seqWrite: pick("seqWrite"),
        rand1: pick("rand1"),
        rand4: pick("rand4"),
      },
    },
    mmio: { idle: mmio("idle"), loaded: mmio("loaded") },
  };
}

function describe(key: string, round: Round): string {
  const net =
    "supported" in round.net
      ? `net: ${round.net.reason}`
      : `net guest->L1 ${round.net.guestToL1} MB/s (${describeCounts(round.net.counts.guestToL1)}), ` +
        `L1->guest ${round.net.l1ToGuest} MB/s (${describeCounts(round.net.counts.l1ToGuest)})`;
  const { blk, mmio } = round;
  return (
    `${key}: ${net}; blk read ${blk.seqRead} MB/s, write ${blk.seqWrite} MB/s, 4K random ${blk.rand1}/${blk.rand4} IOPS ` +
    `(depth 1/4); MMIO read of ${mmio.idle.slot} ${mmio.idle.medianUs} us idle, ${mmio.loaded.medianUs} us with vdb busy`
  );
}

/**
 * Rounds of one boot per VMM, alternating, so that both meet the same
 * load on a shared machine; the figures are medians over the rounds. A
 * round that fails runs once more: the emulator under L1 now and then
 * resets or stalls an L2 guest under either VMM (test/nested/README.md);
 * the first error is kept with the figures.
 */
export async function runDeviceBench(
  vmms: DeviceVmm[],
  files: GuestFiles,
  scratch: string,
  options: { mib: number; reps: number; placement: NetPlacement },
  log: (line: string) => void,
): Promise<Record<string, DeviceResult>> {
  const disks = ["blk-a.img", "blk-b.img"].map((name) => path.join(scratch, name));
  // Data rather than holes: tmpfs answers reads of a hole without storing anything.
  for (const disk of disks) writeFileSync(disk, Buffer.alloc(DISK_BYTES, 0x5a));
  const tap = createTap("vbench", `${L1_ADDRESS}/24`);
  const rounds = new Map<string, Round[]>(vmms.map((v) => [v.key, []]));
  const firstErrors = new Map<string, string>();
  try {
    for (let i = 0; i < options.reps; i++) {
      for (const vmm of vmms) {
        let round: Round;
        try {
          round = await measureRound(vmm, files, disks, tap.tap, options.mib, options.placement);
        } catch (error) {
          const first = error instanceof Error ? error.message : String(error);
          log(`${vmm.key}: round ${i + 1} failed; running it once more. It failed with:\n${first}`);
          if (!firstErrors.has(vmm.key)) firstErrors.set(vmm.key, first);
          round = await measureRound(vmm, files, disks, tap.tap, options.mib, options.placement);
        }
        rounds.get(vmm.key)?.push(round);
        log(`round ${i + 1}: ${describe(vmm.key, round)}`);
      }
    }
  } finally {
    tap.remove();
  }
  const results: Record<string, DeviceResult> = {};
  for (const [key, list] of rounds) {
    const error = firstErrors.get(key);
    results[key] = {
      ...summarise(list),
      ...(error === undefined ? {} : { firstAttemptError: error }),
    };
  }
  return results;
}
