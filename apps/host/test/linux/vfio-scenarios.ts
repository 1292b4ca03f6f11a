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
// The guest's address for edu: pcie.0, slot 5; or behind root port rp1
// (at 00:02.0), bus 1, its one slot.
const GUEST_EDU = "0000:00:05.0";
const GUEST_EDU_IN_PORT = "0000:01:00.0";
const GUEST_EDU_IN_PORT_2 = "0000:02:00.0";
const GUEST_PORT = "0000:00:02.0";
const GUEST_PORT_2 = "0000:00:03.0";
const ROOT_PORT = "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=0x2";
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

/** L1's edu, bound to vfio-pci with VFIO's modules loaded. */
function boundEdu(): string {
  loadVfioModules();
  const edu = findEdu();
  bindToVfio(edu);
  return edu;
}

/** q35Args with a QMP socket in `scratch`. */
function withQmp(scratch: string, ...devices: string[]): { args: string[]; socket: string } {
  const socket = path.join(scratch, "qmp.sock");
  return { args: [...q35Args(...devices), "-qmp", `unix:${socket},server,nowait`], socket };
}

function q35Args(...devices: string[]): string[] {
  return [
    "-machine",
    "q35",
    ...linuxKernelArgs({ smp: "1", mem: "256", append: "console=ttyS0 virga.action=stay" }),
    ...devices.flatMap((device) => ["-device", device]),
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

async function register(
  vm: VmmProcess,
  offset: number,
  value?: number,
  address = GUEST_EDU,
): Promise<number> {
  const write = value === undefined ? "" : ` 0x${value.toString(16)}`;
  const out = await guestLine(
    vm,
    `virga-io pci-reg ${address} 0 0x${offset.toString(16)}${write}`,
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
  address = GUEST_EDU,
): Promise<number> {
  const write = value === undefined ? "" : ` 0x${value.toString(16)}`;
  const out = await guestLine(
    vm,
    `virga-io pci-cfg ${address} 0x${offset.toString(16)} ${size}${write}`,
    "CFG",
  );
  const found = /value=(0x[0-9a-f]+)/.exec(out);
  if (found === null) throw new Error(`pci-cfg said: ${out}`);
  return Number(found[1]);
}

/** The guest's half: identity, registers, factorial, MSI and DMA of edu at GUEST_EDU. */
async function driveEdu(
  vm: VmmProcess,
  finish: "poweroff" | "stay" = "poweroff",
  address = GUEST_EDU,
  booted = false,
): Promise<void> {
  if (!booted) await vm.waitFor(/VIRGA-GUEST action=stay/, BOOT_MS);
  const reg = (offset: number, value?: number) => register(vm, offset, value, address);
  const cfg = (offset: number, size: number, value?: number) =>
    config(vm, offset, size, value, address);
  const d = `${DEVICES}/${address}`;
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
  if (address !== GUEST_EDU) {
    // Behind a root port: BAR 0 inside the memory window the guest has
    // the port forward (a root port has no BARs: its non-empty resources
    // are its windows).
    const port = address === GUEST_EDU_IN_PORT ? GUEST_PORT : GUEST_PORT_2;
    const resources = await guestLine(vm, `cat ${DEVICES}/${port}/resource`, "WIN");
    const windows = resources
      .split(/\r?\n/)
      .map((line) =>
        line
          .trim()
          .split(/\s+/)
          .map((n) => BigInt(n)),
      )
      .filter(([base, limit]) => (base ?? 0n) !== 0n && (limit ?? 0n) !== 0n);
    assert.ok(
      windows.some(
        ([base, limit]) => (start ?? 0n) >= (base ?? 0n) && (end ?? 0n) <= (limit ?? 0n),
      ),
      `BAR 0 ${bar0} is in none of root port ${port}'s windows: ${resources}`,
    );
  }
  // Memory decoding and bus mastering on (what a driver's pci_enable_device
  // and pci_set_master do), through the passed-through command register.
  assert.equal((await cfg(0x04, 2, 0x0006)) & 0x6, 0x6);
  assert.equal(await reg(0x00), 0x010000ed);
  assert.equal(await reg(0x04, 0x12345678), 0xedcba987);
  await reg(0x08, 5);
  const factorial = await guestLine(
    vm,
    `i=0; while [ $i -lt 50 ]; do s=$(virga-io pci-reg ${address} 0 0x20 | sed 's/.*value=//'); [ $((s & 1)) = 0 ] && break; i=$((i+1)); sleep 0.1; done; virga-io pci-reg ${address} 0 0x8`,
    "FACT",
  );
  assert.match(factorial, /value=0x00000078$/);
  // MSI: the capability (64-bit, at 0x40), aimed at CPU 0 with a vector no
  // driver owns, then edu's raise register. The interrupt arrives through
  // VFIO's eventfd and KVM's irqfd, and the guest's kernel logs the vector.
  assert.equal(await cfg(0x34, 1), 0x40);
  assert.equal((await cfg(0x40, 1)) & 0xff, 0x05);
  const unhandled = async (): Promise<number> =>
    Number(
      (await guestLine(vm, "dmesg | grep -c 'No irq handler for vector'", "MSI"))
        .split(/\r?\n/)
        .pop(),
    );
  const before = await unhandled();
  await cfg(0x44, 4, 0xfee00000);
  await cfg(0x48, 4, 0);
  await cfg(0x4c, 2, TEST_VECTOR);
  assert.equal((await cfg(0x42, 2, 0x0001)) & 1, 1);
  await reg(0x60, 0x1); // write-only: reads back all ones
  assert.equal(await reg(0x24), 0x1);
  await guestLine(vm, "sleep 1", "WAIT");
  const after = await unhandled();
  assert.ok(after > before, `the guest logged no new unhandled vector (${before}, then ${after})`);
  await reg(0x64, 0x1);
  assert.equal(await reg(0x24), 0);
  // DMA: a page of guest RAM to edu's buffer and back to another page, at
  // the guest-physical addresses the guest knows (VFIO maps guest RAM so).
  const dma = await guestLine(vm, `virga-io edu-dma ${address}`, "DMA");
  assert.match(dma, /VIRGA-IO edu-dma from=0x[0-9a-f]+ to=0x[0-9a-f]+ bytes=2048 same=1/);
  if (finish === "stay") return;
  vm.send("poweroff -f");
  assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
}

/** Waits (in the guest) until `address` is in its sysfs, or has left it. */
async function guestHas(vm: VmmProcess, address: string, present: boolean): Promise<void> {
  const test = present ? "-e" : "! -e";
  const out = await guestLine(
    vm,
    `i=0; while ! [ ${test} ${DEVICES}/${address} ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done; ls ${DEVICES}`,
    "SEEN",
  );
  assert.equal(out.split(/\s+/).includes(address), present, `the guest's ${DEVICES}: ${out}`);
}

/** What of VFIO's the VM process holds open (/dev/vfio/vfio, its groups). */
function vfioFds(vm: VmmProcess): string[] {
  const dir = `/proc/${vm.child.pid ?? 0}/fd`;
  return readdirSync(dir)
    .map((fd) => {
      try {
        return readlinkSync(path.join(dir, fd));
      } catch {
        return "";
      }
    })
    .filter((target) => target.startsWith("/dev/vfio/") || target.startsWith("anon_inode:[vfio"))
    .sort();
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
      const edu = boundEdu();
      await withVmm(q35Args(`vfio-pci,host=${edu},id=edu,bus=pcie.0,addr=0x5`), driveEdu);
    },
  },
  {
    name: "edu passed through by sysfsdev= answers the same way before and after system_reset",
    async run(scratch) {
      const edu = boundEdu();
      const { args, socket } = withQmp(
        scratch,
        `vfio-pci,sysfsdev=${DEVICES}/${edu},id=edu,bus=pcie.0,addr=0x5`,
      );
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
  {
    name: "edu cold-plugged in a root port's slot: its BAR 0 in the port's window, registers, factorial, MSI and DMA",
    async run() {
      const edu = boundEdu();
      await withVmm(q35Args(ROOT_PORT, `vfio-pci,host=${edu},id=edu,bus=rp1,addr=0x0`), (vm) =>
        driveEdu(vm, "poweroff", GUEST_EDU_IN_PORT),
      );
    },
  },
  {
    name: "edu hot-plugged into a root port of a running guest, driven, unplugged (DEVICE_DELETED, VFIO's fds closed) and plugged again",
    async run(scratch) {
      const edu = boundEdu();
      const { args, socket } = withQmp(
        scratch,
        ROOT_PORT,
        "pcie-root-port,id=rp2,port=2,bus=pcie.0,addr=0x3",
      );
      await withVmm(args, async (vm) => {
        await vm.waitFor(/VIRGA-GUEST action=stay/, BOOT_MS);
        const qmp = await connectQmp(socket, vm);
        assert.deepEqual(vfioFds(vm), []);
        // Refused by name while the guest runs on, nothing left open.
        await assert.rejects(
          qmp.execute("device_add", {
            driver: "vfio-pci",
            id: "gone",
            host: "0000:00:1e.7",
            bus: "rp1",
            addr: "0x0",
          }),
          /vfio-pci device gone: host 0000:00:1e\.7: no such PCI device on this host/,
        );
        assert.deepEqual(vfioFds(vm), []);

        const add = { driver: "vfio-pci", id: "edu", host: edu, bus: "rp1", addr: "0x0" };
        assert.deepEqual(await qmp.execute("device_add", add), {});
        assert.ok(vfioFds(vm).length >= 3, `VFIO's fds: ${vfioFds(vm).join(", ")}`);
        await guestHas(vm, GUEST_EDU_IN_PORT, true);
        await driveEdu(vm, "stay", GUEST_EDU_IN_PORT, true);
        // The same function twice, and a second device in an occupied slot: refused.
        await assert.rejects(
          qmp.execute("device_add", { ...add, id: "edu2", bus: "rp2" }),
          new RegExp(
            `vfio-pci device edu2: host ${edu} is passed through already, as device 'edu'`,
          ),
        );
        await assert.rejects(
          qmp.execute("device_add", { ...add, id: "edu2" }),
          /bus: root port 'rp1' is occupied by device 'edu'/,
        );

        const deleted = qmp.waitFor(
          (m) => m.event === "DEVICE_DELETED" && (m.data as { device?: string }).device === "edu",
          120000,
        );
        assert.deepEqual(await qmp.execute("device_del", { id: "edu" }), {});
        const event = await deleted;
        assert.deepEqual(event.data, { device: "edu", path: "/machine/peripheral/edu" });
        // Unplugged: its device, group and container are closed.
        assert.deepEqual(vfioFds(vm), []);
        await guestHas(vm, GUEST_EDU_IN_PORT, false);

        // And it can be passed through again, into the other port this time.
        assert.deepEqual(await qmp.execute("device_add", { ...add, bus: "rp2" }), {});
        await guestHas(vm, GUEST_EDU_IN_PORT_2, true);
        await driveEdu(vm, "poweroff", GUEST_EDU_IN_PORT_2, true);
      });
    },
  },
];
