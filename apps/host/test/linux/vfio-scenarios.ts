// VFIO pass-through (docs/q35.md, "VFIO"), in its own L1: run-in-l1.sh
// --machine q35-vfio gives L1 an emulated Intel IOMMU and QEMU's edu test
// device (1234:11e8). These scenarios load VFIO's modules there, bind edu
// to vfio-pci and pass it to the Debian guest under virga-vmm, which finds
// it on pcie.0 and drives its registers through BAR 0 with no driver
// (virga-io pci-reg/pci-cfg/edu-dma), including its MSI and DMA.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { connectQmp, withVmm, type VmmProcess } from "../support/guest";
import { repoRoot, vmmBin } from "../support/paths";
import { linuxKernelArgs } from "./guest-images";
import type { Scenario } from "./scenarios";

const BOOT_MS = 180000;
const DEVICES = "/sys/bus/pci/devices";
const MODULES = path.join(repoRoot, "build", "guests", "l1-vfio");
// The guest's address for edu: pcie.0, slot 5.
const GUEST_EDU = "0000:00:05.0";
// An MSI vector no guest driver owns: its arrival is logged as unhandled.
const TEST_VECTOR = 0xd0;

// finit_module(2): the host tree L1 runs on has no insmod.
const LOAD_MODULE_PY =
  "import ctypes,os,sys\n" +
  "fd=os.open(sys.argv[1],os.O_RDONLY)\n" +
  "if ctypes.CDLL(None,use_errno=True).syscall(313,fd,b'',0)!=0:\n" +
  "  e=ctypes.get_errno(); sys.exit(0 if e==17 else 'finit_module '+sys.argv[1]+': '+os.strerror(e))\n";

function loadVfioModules(): void {
  const order = path.join(MODULES, "etc", "virga-modules");
  if (!existsSync(order))
    throw new Error(`${order} is missing: run apps/host/test/images/build.sh`);
  for (const line of readFileSync(order, "utf8").split("\n")) {
    const name = line.replace(/^\?/, "").trim();
    if (name === "") continue;
    const loaded = spawnSync(
      "/usr/bin/python3",
      ["-c", LOAD_MODULE_PY, path.join(MODULES, "lib", "modules", name)],
      {
        encoding: "utf8",
      },
    );
    if (loaded.status !== 0) throw new Error(`loading ${name}: ${loaded.stderr}`);
  }
}

/** L1's edu function (DDDD:BB:SS.F), or throws when this is not the q35-vfio L1. */
function findEdu(): string {
  for (const name of readdirSync(DEVICES)) {
    const id = (file: string): string =>
      readFileSync(path.join(DEVICES, name, file), "utf8").trim();
    if (id("vendor") === "0x1234" && id("device") === "0x11e8") return name;
  }
  throw new Error(
    "no edu device (1234:11e8) in L1: run this under run-in-l1.sh --machine q35-vfio",
  );
}

function driverOf(address: string): string {
  const link = path.join(DEVICES, address, "driver");
  return existsSync(link) ? path.basename(readlinkSync(link)) : "";
}

/** Binds `address` to vfio-pci, as an administrator would. */
function bindToVfio(address: string): void {
  writeFileSync(path.join(DEVICES, address, "driver_override"), "vfio-pci");
  if (driverOf(address) !== "")
    writeFileSync(path.join(DEVICES, address, "driver", "unbind"), address);
  writeFileSync("/sys/bus/pci/drivers_probe", address);
  assert.equal(driverOf(address), "vfio-pci");
}

function q35Args(device: string): string[] {
  return [
    "-machine",
    "q35",
    ...linuxKernelArgs({ smp: "1", mem: "256", append: "console=ttyS0 virga.action=stay" }),
    "-device",
    device,
  ];
}

/** virga-vmm refuses the command line before any guest runs: its exit code and stderr. */
function refusal(device: string): { status: number | null; stderr: string } {
  const run = spawnSync(vmmBin, q35Args(device), { encoding: "utf8", timeout: 60000 });
  return { status: run.status, stderr: run.stderr };
}

/** A shell line in the guest, answered between markers. */
async function guestLine(vm: VmmProcess, command: string, tag: string): Promise<string> {
  vm.send(`echo ${tag}-BEGIN; ${command}; echo ${tag}-END`);
  const seen = await vm.waitFor(
    new RegExp(`${tag}-BEGIN\\r?\\n([\\s\\S]*?)\\r?\\n?${tag}-END`),
    BOOT_MS,
  );
  return (seen[1] ?? "").trim();
}

async function register(vm: VmmProcess, offset: number, value?: number): Promise<number> {
  const write = value === undefined ? "" : ` 0x${value.toString(16)}`;
  const out = await guestLine(
    vm,
    `virga-io pci-reg ${GUEST_EDU} 0 0x${offset.toString(16)}${write}`,
    "REG",
  );
  const found = /value=(0x[0-9a-f]+)/.exec(out);
  if (found === null) throw new Error(`pci-reg said: ${out}`);
  return Number(found[1]);
}

async function config(
  vm: VmmProcess,
  offset: number,
  size: number,
  value?: number,
): Promise<number> {
  const write = value === undefined ? "" : ` 0x${value.toString(16)}`;
  const out = await guestLine(
    vm,
    `virga-io pci-cfg ${GUEST_EDU} 0x${offset.toString(16)} ${size}${write}`,
    "CFG",
  );
  const found = /value=(0x[0-9a-f]+)/.exec(out);
  if (found === null) throw new Error(`pci-cfg said: ${out}`);
  return Number(found[1]);
}

/** The guest's half: identity, registers, factorial, MSI and DMA of edu at GUEST_EDU. */
async function driveEdu(vm: VmmProcess, finish: "poweroff" | "stay" = "poweroff"): Promise<void> {
  await vm.waitFor(/VIRGA-GUEST action=stay/, BOOT_MS);
  const d = `${DEVICES}/${GUEST_EDU}`;
  const ids = await guestLine(
    vm,
    `cat ${d}/vendor ${d}/device ${d}/class; head -1 ${d}/resource`,
    "IDS",
  );
  const [vendor, device, klass, bar0] = ids.split(/\r?\n/);
  assert.deepEqual([vendor, device, klass], ["0x1234", "0x11e8", "0x00ff00"]);
  // BAR 0: 1 MiB of 32-bit memory, where the VMM placed it in the window.
  const [start, end] = (bar0 ?? "").split(" ").map((n) => BigInt(n));
  assert.equal((end ?? 0n) - (start ?? 0n) + 1n, 1n << 20n, `BAR 0 resource line: ${bar0}`);
  // Memory decoding and bus mastering on (what a driver's pci_enable_device
  // and pci_set_master do), through the passed-through command register.
  assert.equal((await config(vm, 0x04, 2, 0x0006)) & 0x6, 0x6);
  assert.equal(await register(vm, 0x00), 0x010000ed);
  assert.equal(await register(vm, 0x04, 0x12345678), 0xedcba987);
  await register(vm, 0x08, 5);
  const factorial = await guestLine(
    vm,
    `i=0; while [ $i -lt 50 ]; do s=$(virga-io pci-reg ${GUEST_EDU} 0 0x20 | sed 's/.*value=//'); [ $((s & 1)) = 0 ] && break; i=$((i+1)); sleep 0.1; done; virga-io pci-reg ${GUEST_EDU} 0 0x8`,
    "FACT",
  );
  assert.match(factorial, /value=0x00000078$/);
  // MSI: the capability (64-bit, at 0x40), aimed at CPU 0 with a vector no
  // driver owns, then edu's raise register. The interrupt arrives through
  // VFIO's eventfd and KVM's irqfd, and the guest's kernel logs the vector.
  assert.equal(await config(vm, 0x34, 1), 0x40);
  assert.equal((await config(vm, 0x40, 1)) & 0xff, 0x05);
  await config(vm, 0x44, 4, 0xfee00000);
  await config(vm, 0x48, 4, 0);
  await config(vm, 0x4c, 2, TEST_VECTOR);
  assert.equal((await config(vm, 0x42, 2, 0x0001)) & 1, 1);
  await register(vm, 0x60, 0x1); // write-only: reads back all ones
  assert.equal(await register(vm, 0x24), 0x1);
  const logged = await guestLine(vm, "sleep 1; dmesg | grep -c 'No irq handler for vector'", "MSI");
  assert.ok(
    Number(logged.split(/\r?\n/).pop()) >= 1,
    `the guest logged no unhandled vector: ${logged}`,
  );
  await register(vm, 0x64, 0x1);
  assert.equal(await register(vm, 0x24), 0);
  // DMA: a page of guest RAM to edu's buffer and back to another page, at
  // the guest-physical addresses the guest knows (VFIO maps guest RAM so).
  const dma = await guestLine(vm, `virga-io edu-dma ${GUEST_EDU}`, "DMA");
  assert.match(dma, /VIRGA-IO edu-dma from=0x[0-9a-f]+ to=0x[0-9a-f]+ bytes=2048 same=1/);
  if (finish === "stay") return;
  vm.send("poweroff -f");
  assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
}

export const VFIO_SCENARIOS: Scenario[] = [
  {
    name: "vfio-pci is refused by name while L1 has no /dev/vfio",
    run() {
      assert.equal(existsSync("/dev/vfio/vfio"), false, "VFIO's modules are loaded already");
      const edu = findEdu();
      const { status, stderr } = refusal(`vfio-pci,host=${edu},id=edu,bus=pcie.0,addr=0x5`);
      assert.equal(status, 1, stderr);
      assert.match(
        stderr,
        /vfio-pci device edu: \/dev\/vfio\/vfio \(VFIO: load the vfio, vfio_pci and vfio_iommu_type1 modules\)/,
      );
      return Promise.resolve();
    },
  },
  {
    name: "vfio-pci refuses a host function that is missing or not bound to vfio-pci",
    run() {
      loadVfioModules();
      const edu = findEdu();
      const missing = refusal("vfio-pci,host=0000:00:1e.7,id=edu,bus=pcie.0,addr=0x5");
      assert.equal(missing.status, 1, missing.stderr);
      assert.match(
        missing.stderr,
        /vfio-pci device edu: host 0000:00:1e\.7: no such PCI device on this host/,
      );
      if (driverOf(edu) === "vfio-pci")
        writeFileSync(path.join(DEVICES, edu, "driver", "unbind"), edu);
      const unbound = refusal(`vfio-pci,host=${edu},id=edu,bus=pcie.0,addr=0x5`);
      assert.equal(unbound.status, 1, unbound.stderr);
      assert.match(
        unbound.stderr,
        new RegExp(`host ${edu}: bound to no driver, not vfio-pci \\(echo vfio-pci > `),
      );
      return Promise.resolve();
    },
  },
  {
    name: "edu passed through by host= on q35: the guest sees 1234:11e8, drives its registers, factorial, MSI and DMA",
    async run() {
      loadVfioModules();
      const edu = findEdu();
      bindToVfio(edu);
      await withVmm(q35Args(`vfio-pci,host=${edu},id=edu,bus=pcie.0,addr=0x5`), driveEdu);
    },
  },
  {
    name: "edu passed through by sysfsdev= answers the same way before and after system_reset",
    async run(scratch) {
      loadVfioModules();
      const edu = findEdu();
      bindToVfio(edu);
      const socket = path.join(scratch, "qmp.sock");
      const args = [
        ...q35Args(`vfio-pci,sysfsdev=${DEVICES}/${edu},id=edu,bus=pcie.0,addr=0x5`),
        "-qmp",
        `unix:${socket},server,nowait`,
      ];
      await withVmm(args, async (vm) => {
        await driveEdu(vm, "stay");
        // The reset turns MSI off and clears the device's command register;
        // the rebooted guest finds and drives it as before.
        const qmp = await connectQmp(socket, vm);
        await qmp.execute("system_reset");
        await driveEdu(vm);
      });
    },
  },
];
