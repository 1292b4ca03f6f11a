// The device section of `npm run bench linux`, run inside L1 (real KVM):
// the same guest-side measurements under each VMM, each with its own flags.
//   net:  virtio-net TCP throughput guest → L1 and L1 → guest over a tap
//   blk:  virtio-blk O_DIRECT sequential read/write and 4 KiB random reads
//         in the guest, on disk images in L1's tmpfs
//   mmio: time per read of an idle virtio-mmio slot's InterruptStatus
//         (a userspace exit), idle and with another disk kept busy
// A VMM that refuses a device's flags gets that device's rows marked
// unsupported with its own error line; nothing is estimated.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
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
import { median, qemuMicrovm } from "./measure";

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
}

export function virgaDeviceVmm(vmmBin: string): DeviceVmm {
  return {
    key: "virga",
    command: vmmBin,
    args: (files, disks, tap) => [
      "-machine",
      "microvm",
      "-kernel",
      files.kernel,
      "-initrd",
      files.initrd,
      "-smp",
      files.smp,
      "-m",
      files.memMiB,
      "-append",
      APPEND,
      "-serial",
      "stdio",
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

interface BootedGuest {
  child: ChildProcess;
  /** The serial console; its waits fail as soon as the VMM has exited. */
  console: GuestConsole;
  text: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts the VMM; resolves once the guest's shell is up, or rejects with the VMM's stderr. */
async function bootGuest(command: string, args: string[]): Promise<BootedGuest> {
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

async function stop(guest: BootedGuest): Promise<void> {
  guest.child.kill("SIGKILL");
  await guest.exited;
}

async function measureNet(guest: BootedGuest, mib: number, reps: number): Promise<NetResult> {
  await guestScenario(guest.console, `net-up eth0 ${GUEST_ADDRESS}/24`);
  await guestScenario(guest.console, `ping ${L1_ADDRESS} 2`);
  const samples = { guestToL1: [] as number[], l1ToGuest: [] as number[] };
  for (let i = 0; i < reps; i++) {
    // guest → L1: L1's receiver clock counts what arrived.
    const receiver = l1Receive(5001);
    await receiver.listening;
    await guestScenario(guest.console, `io tcp-send ${L1_ADDRESS} 5001 ${mib}`, 180000);
    samples.guestToL1.push(Number((await receiver.result)["MB/s"]));
    // L1 → guest: the guest's receiver clock.
    sendScenario(guest.console, "io tcp-recv 5002");
    await guest.console.waitFor(/VIRGA-IO tcp-recv listening/, 60000);
    await l1Send(GUEST_ADDRESS, 5002, mib);
    samples.l1ToGuest.push(numberField(await scenarioResult(guest.console, "io", 180000), "MB/s"));
  }
  return {
    supported: true,
    guestToL1MBps: median(samples.guestToL1),
    l1ToGuestMBps: median(samples.l1ToGuest),
    samples,
  };
}

async function measureBlk(guest: BootedGuest, reps: number): Promise<BlkResult> {
  const runs: Record<string, string> = {
    seqRead: "io seq-read /dev/vda 128 1M",
    seqWrite: "io seq-write /dev/vda 128 1M",
    rand1: "io rand-read /dev/vda 5 1",
    rand4: "io rand-read /dev/vda 5 4",
  };
  const samples: Record<string, number[]> = { seqRead: [], seqWrite: [], rand1: [], rand4: [] };
  const latency: number[] = [];
  for (let i = 0; i < reps; i++) {
    for (const [key, command] of Object.entries(runs)) {
      const line = await guestScenario(guest.console, command, 180000);
      samples[key]?.push(numberField(line, key.startsWith("rand") ? "IOPS" : "MB/s"));
      if (key === "rand1") latency.push(numberField(line, "latency-us"));
    }
  }
  const med = (key: string): number => median(samples[key] ?? []);
  return {
    seqReadMBps: med("seqRead"),
    seqWriteMBps: med("seqWrite"),
    randRead4kIops1: med("rand1"),
    randRead4kIops4: med("rand4"),
    randRead4kLatencyUs1: median(latency),
    samples,
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

/** One VMM: boots it with a NIC (or, when it refuses one, without) and measures. */
async function measureVmm(
  vmm: DeviceVmm,
  files: GuestFiles,
  disks: string[],
  tap: string,
  options: { mib: number; reps: number },
  log: (line: string) => void,
): Promise<DeviceResult> {
  let refused: string | null = null;
  let guest: BootedGuest;
  try {
    guest = await bootGuest(vmm.command, vmm.args(files, disks, tap));
  } catch (error) {
    if (!(error instanceof VmmExited) || error.code === 0) throw error;
    // The refusal as the VMM words it; the other rows run without a NIC.
    refused = error.stderr.split("\n")[0] ?? error.message;
    log(`${vmm.key}: with a NIC: ${refused}`);
    guest = await bootGuest(vmm.command, vmm.args(files, disks, null));
  }
  try {
    const net: NetResult | Unsupported =
      refused === null
        ? await measureNet(guest, options.mib, options.reps)
        : { supported: false, reason: refused };
    if (net.supported)
      log(
        `${vmm.key}: net guest->L1 ${net.guestToL1MBps.toFixed(1)} MB/s, L1->guest ${net.l1ToGuestMBps.toFixed(1)} MB/s`,
      );
    const blk = await measureBlk(guest, options.reps);
    log(
      `${vmm.key}: blk seq read ${blk.seqReadMBps.toFixed(1)} MB/s, write ${blk.seqWriteMBps.toFixed(1)} MB/s, ` +
        `4K random read ${blk.randRead4kIops1.toFixed(0)} IOPS (1 thread), ${blk.randRead4kIops4.toFixed(0)} (4 threads)`,
    );
    const mmio = await measureMmio(guest, vmm);
    log(
      `${vmm.key}: mmio read of ${mmio.idle.slot}: median ${mmio.idle.medianUs.toFixed(1)} us idle, ` +
        `${mmio.loaded.medianUs.toFixed(1)} us with /dev/vdb busy (${String(mmio.loaded.loadMBps)} MB/s)`,
    );
    return { net, blk, mmio };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${vmm.key}: ${message}\n--- console:\n${guest.text().slice(-3000)}\n--- stderr:\n${guest.stderr()}`,
    );
  } finally {
    await stop(guest);
  }
}

/**
 * Measures each VMM in turn on the same tap and disk images. A VMM whose
 * run fails gets one more: the emulator under L1 now and then resets or
 * stalls an L2 guest under either VMM (test/nested/README.md); the first
 * error is kept with the figures.
 */
export async function runDeviceBench(
  vmms: DeviceVmm[],
  files: GuestFiles,
  scratch: string,
  options: { mib: number; reps: number },
  log: (line: string) => void,
): Promise<Record<string, DeviceResult>> {
  const disks = ["blk-a.img", "blk-b.img"].map((name) => path.join(scratch, name));
  // Data rather than holes: tmpfs answers reads of a hole without storing anything.
  for (const disk of disks) writeFileSync(disk, Buffer.alloc(DISK_BYTES, 0x5a));
  const tap = createTap("vbench", `${L1_ADDRESS}/24`);
  const results: Record<string, DeviceResult> = {};
  try {
    for (const vmm of vmms) {
      try {
        results[vmm.key] = await measureVmm(vmm, files, disks, tap.tap, options, log);
      } catch (error) {
        const first = error instanceof Error ? error.message : String(error);
        log(`${vmm.key}: the run failed; measuring once more. It failed with:\n${first}`);
        const again = await measureVmm(vmm, files, disks, tap.tap, options, log);
        results[vmm.key] = { ...again, firstAttemptError: first };
      }
    }
  } finally {
    tap.remove();
  }
  return results;
}
