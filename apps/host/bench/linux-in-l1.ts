// The Linux half of `npm run bench linux`, run inside L1 (real KVM): process
// start → the Debian guest's "VIRGA-GUEST ready" for virga-vmm and for QEMU's
// microvm with the same kernel, initramfs, vCPUs, memory and block slots
// (and QEMU with no devices, for reference), alternating; then the device
// section (devices-in-l1.ts): network, disk and MMIO figures under each;
// then snapshots, restores and live migration (snapmig-in-l1.ts); then the
// q35 board's boot and hot-plug (q35-in-l1.ts).
// usage: node linux-in-l1.js --runs N --out FILE [--section boot|devices|snapmig|q35|all]
//        [--device-runs N] [--net-mib MIB] [--net-irq-cpu 0|1] [--net-task-cpu 0|1]
//        [--snapmig-runs N] [--hotplug-runs N]
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { qemuDeviceVmm, runDeviceBench, virgaDeviceVmm } from "./devices-in-l1";
import { qemuSnapshotVmm, runSnapMigBench, virgaSnapshotVmm } from "./snapmig-in-l1";
import { accountedBoot, describeAccounting, summariseAccounting } from "./accounted-boot";
import { bootOnce, median, QEMU_SAME_DISKS, qemuMicrovm, virgaKernelBoot } from "./measure";
import { q35BootFigures, q35HotPlugFigures } from "./q35-in-l1";

const root = path.resolve(__dirname, "..", "..", "..", "..");
const built = path.join(root, "build", "guests", "linux");
// Inside L1 the repository is on a 9p share, which reads a 65 MB vmlinux
// far slower than a host's disk would: both VMMs boot copies in L1's tmpfs,
// so the figures compare the VMMs rather than the share.
const scratch = mkdtempSync(path.join(tmpdir(), "virga-bench-"));
function local(file: string): string {
  const copy = path.join(scratch, path.basename(file));
  copyFileSync(file, copy);
  return copy;
}
const kernel = local(process.env.VIRGA_GUEST_KERNEL ?? path.join(built, "vmlinux"));
const initrd = local(process.env.VIRGA_GUEST_INITRD ?? path.join(built, "initramfs.cpio.gz"));
const vmmBin = path.join(root, "native", "build", "Release", "virga-vmm");
const append = "console=ttyS0 quiet virga.action=poweroff";
const MARKER = "VIRGA-GUEST ready";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

async function bootSection(runs: number, smp: string, mem: string): Promise<object> {
  const virga: [string, string[]] = [
    vmmBin,
    virgaKernelBoot({ machine: "microvm", kernel, initrd, smp, memMiB: mem, append }),
  ];
  // QEMU's microvm finds its virtio-mmio devices and COM1 through ACPI, as
  // ours; the RTC is on (without it Linux spins ~4 s probing one).
  const qemuBare = qemuMicrovm({
    machine: "microvm,rtc=on",
    cpu: "host",
    smp,
    memMiB: mem,
    kernel,
    initrd,
    append,
  });
  const qemu: [string, string[]] = [qemuBare[0], [...qemuBare[1], ...QEMU_SAME_DISKS]];
  const bytes = Number(mem) * 1024 * 1024;
  const samples = { virga: [] as number[], qemu: [] as number[], qemuBare: [] as number[] };
  for (let i = 0; i < runs; i++) {
    samples.virga.push((await bootOnce(...virga, MARKER, bytes, 180000)).readyMs);
    samples.qemu.push((await bootOnce(...qemu, MARKER, bytes, 180000)).readyMs);
    samples.qemuBare.push((await bootOnce(...qemuBare, MARKER, bytes, 180000)).readyMs);
    console.log(
      `run ${i + 1}: virga ${samples.virga.at(-1)?.toFixed(0)} ms, qemu (same disks) ${samples.qemu.at(-1)?.toFixed(0)} ms, qemu (no devices) ${samples.qemuBare.at(-1)?.toFixed(0)} ms`,
    );
  }
  const accounted = [];
  for (let i = 0; i < runs; i++) {
    const one = await accountedBoot(...virga, MARKER, path.join(scratch, "accounted.log"));
    accounted.push(one);
    console.log(describeAccounting(i + 1, one));
  }
  return {
    virga: { medianMs: median(samples.virga), samples: samples.virga },
    qemu: { medianMs: median(samples.qemu), samples: samples.qemu },
    qemuNoDevices: { medianMs: median(samples.qemuBare), samples: samples.qemuBare },
    virgaAccounting: summariseAccounting(accounted),
  };
}

async function main(): Promise<void> {
  const runs = Number(arg("runs", "5"));
  const smp = arg("smp", "1");
  const mem = arg("mem", "512");
  const out = arg("out", "linux-bench.json");
  const section = arg("section", "all");
  if (!["boot", "devices", "snapmig", "q35", "all"].includes(section))
    throw new Error(`--section: expected boot, devices, snapmig, q35 or all, got '${section}'`);
  const wanted = (name: string) => section === "all" || section === name;
  let result: object = { runs, smp, memMiB: Number(mem), kernel };
  if (wanted("boot")) result = { ...result, ...(await bootSection(runs, smp, mem)) };
  if (wanted("devices")) {
    const reps = Number(arg("device-runs", "3"));
    const mib = Number(arg("net-mib", "64"));
    const cpu = (name: string): number | undefined => {
      const value = arg(name, "");
      if (value === "") return undefined;
      if (!/^[01]$/.test(value))
        throw new Error(`--${name}: expected 0 or 1 (the guest has 2 vCPUs), got '${value}'`);
      return Number(value);
    };
    const placement = { irqCpu: cpu("net-irq-cpu"), taskCpu: cpu("net-task-cpu") };
    const placed = [
      placement.irqCpu === undefined ? "" : `the NIC's interrupt on CPU ${placement.irqCpu}`,
      placement.taskCpu === undefined ? "" : `the stream's task on CPU ${placement.taskCpu}`,
    ].filter(Boolean);
    console.log(
      `devices: ${reps} rounds of one boot per VMM (alternating), 2 vCPUs, ${mem} MiB` +
        (placed.length === 0 ? "" : `; in the guest, ${placed.join(" and ")}`),
    );
    const devices = await runDeviceBench(
      [virgaDeviceVmm(vmmBin), qemuDeviceVmm],
      { kernel, initrd, memMiB: mem, smp: "2" },
      scratch,
      { mib, reps, placement },
      (line) => {
        console.log(line);
      },
    );
    result = { ...result, devices: { reps, netMiB: mib, smp: 2, memMiB: Number(mem), ...devices } };
  }
  if (wanted("snapmig")) {
    const reps = Number(arg("snapmig-runs", "3"));
    const dirty = { dirtyMiB: 64, dirtyMiBps: 16 };
    console.log(
      `snapshot/restore/migration: ${reps} rounds per VMM (alternating), 2 vCPUs, ${mem} MiB; ` +
        `migrating while the guest rewrites ${dirty.dirtyMiB} MiB at ${dirty.dirtyMiBps} MiB/s`,
    );
    const figures = await runSnapMigBench(
      [virgaSnapshotVmm(virgaDeviceVmm(vmmBin)), qemuSnapshotVmm(qemuDeviceVmm)],
      { kernel, initrd, memMiB: mem, smp: "2" },
      scratch,
      { reps, ...dirty },
      (line) => {
        console.log(line);
      },
    );
    result = { ...result, snapmig: { reps, smp: 2, memMiB: Number(mem), ...dirty, ...figures } };
  }
  if (wanted("q35")) {
    const rounds = Number(arg("hotplug-runs", "2"));
    const cycles = 3;
    const bootDisk = path.join(scratch, "q35-boot.img");
    writeFileSync(bootDisk, Buffer.alloc(16 * 1024 * 1024, 0x5a));
    const files = { kernel, initrd, memMiB: mem, smp, bootDisk };
    const log = (line: string) => {
      console.log(line);
    };
    console.log(
      `q35: ${runs} boots per VMM (alternating), ${smp} vCPU(s), ${mem} MiB, root port 1 empty and a ` +
        `virtio-blk-pci disk in root port 2; then ${rounds} rounds of one boot per VMM with ${cycles} ` +
        `plug/unplug cycles each`,
    );
    const boot = await q35BootFigures(vmmBin, files, runs, scratch, log);
    const hotplug = await q35HotPlugFigures(vmmBin, files, { rounds, cycles }, scratch, log);
    result = { ...result, q35: { smp: Number(smp), memMiB: Number(mem), boot, hotplug } };
  }
  writeFileSync(out, JSON.stringify(result, null, 2));
}

main().catch((error: unknown) => {
  console.error(`bench linux (in L1): ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
