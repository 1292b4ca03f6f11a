// The probe guest under Debian's QEMU (microvm, KVM, QEMU's own virtio-mmio
// and 8250): an independent implementation of the same devices. The checks
// mirror the virga-vmm host tests, so a guest bug cannot hide a VMM bug.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import { SerialConsole } from "../support/console";
import { makeDisk, readSector, sectorPattern, tempDir } from "../support/disk";
import { requireKvmHost } from "../support/guest";
import { probeGuest } from "../support/paths";
import { pciFunctions } from "../support/pci";

const BOOT_MS = 60000;
const TEST = { timeout: 120000 };

interface Qemu {
  child: ChildProcess;
  serial: SerialConsole;
  exit: Promise<number | null>;
}

function startQemu(
  smp: number,
  append: string,
  drive?: { file: string; readOnly: boolean; device?: string },
  machine = "microvm,acpi=off",
): Qemu {
  const args = [
    "-M",
    machine,
    "-enable-kvm",
    // PVM hosts refuse QEMU's default for MSR 0x10a (GUESTS.md).
    "-cpu",
    "host,-arch-capabilities",
    "-m",
    "128",
    "-smp",
    String(smp),
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    "-serial",
    "stdio",
    // Modern (version 2) virtio-mmio, the transport the probe guest drives.
    "-global",
    "virtio-mmio.force-legacy=false",
    "-kernel",
    probeGuest,
    "-append",
    append,
  ];
  if (drive !== undefined) {
    args.push(
      "-drive",
      `id=d0,file=${drive.file},format=raw,if=none${drive.readOnly ? ",readonly=on" : ""}`,
      "-device",
      drive.device ?? "virtio-blk-device,drive=d0",
    );
  }
  const child = spawn("qemu-system-x86_64", args, { stdio: ["pipe", "pipe", "pipe"] });
  const serial = new SerialConsole();
  serial.attach(child.stdout, child.stdin);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => {
    child.on("exit", (code) => {
      if (code !== 0) serial.text += `\n--- qemu stderr:\n${stderr}`;
      resolve(code);
    });
  });
  return { child, serial, exit };
}

async function withQemu(qemu: Qemu, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (error instanceof Error) error.message += `\n--- serial:\n${qemu.serial.text}`;
    throw error;
  } finally {
    qemu.child.kill("SIGKILL");
    await qemu.exit;
  }
}

describe("the probe guest under QEMU (reference implementation)", () => {
  before(() => {
    requireKvmHost();
    try {
      execFileSync("qemu-system-x86_64", ["--version"], { stdio: "ignore" });
    } catch {
      throw new Error(
        "qemu-system-x86_64 not installed (apt-get install qemu-system-x86; npm install does it as root)",
      );
    }
  });

  it("boots with 4 vCPUs, sees its command line and memory, and powers off", TEST, async () => {
    const qemu = startQemu(4, "console=ttyS0 probe.check=qemu");
    await withQemu(qemu, async () => {
      await qemu.serial.waitFor(/PROBE cmdline console=ttyS0 probe\.check=qemu/, BOOT_MS);
      const mem = await qemu.serial.waitFor(/PROBE mem usable=(\d+)\r?\n/, BOOT_MS);
      const usable = Number(mem[1]);
      assert.ok(usable > 120 * 1024 * 1024 && usable <= 128 * 1024 * 1024, `usable=${usable}`);
      await qemu.serial.waitFor(/PROBE cpus online=4/, BOOT_MS);
      assert.equal(qemu.serial.lines(/^PROBE cpu \d+ apic=\d+ online/).length, 4);
      await qemu.serial.waitFor(/probe> /, BOOT_MS);
      qemu.serial.send("poweroff");
      assert.equal(await qemu.exit, 0);
    });
  });

  it(
    "on QEMU's q35 the same ECAM scan (MCFG) finds the host bridge virga-vmm's q35 has",
    TEST,
    async () => {
      const qemu = startQemu(1, "console=ttyS0", undefined, "q35");
      await withQemu(qemu, async () => {
        await qemu.serial.waitFor(/probe> /, BOOT_MS);
        qemu.serial.send("pci");
        await qemu.serial.waitFor(/OK pci \d+/, BOOT_MS);
        assert.match(
          qemu.serial.lines(/^pci ecam /)[0] ?? "",
          /^pci ecam 0x[0-9a-f]+ buses 00-[0-9a-f]{2}$/,
        );
        // QEMU's q35 also has the ICH9's LPC, SATA and SMBus functions at 00:1f.
        const functions = pciFunctions(qemu.serial.lines(/^pci /));
        assert.equal(functions[0], "00:00.0 8086:29c0 060000", functions.join("\n"));
        assert.ok(functions.includes("00:1f.0 8086:2918 060100"), functions.join("\n"));
        qemu.serial.send("poweroff");
        assert.equal(await qemu.exit, 0);
      });
    },
  );

  it(
    "on QEMU's q35 the probe drives a modern virtio-blk-pci through its capabilities and MSI-X",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        // disable-legacy: the modern-only device (1af4:1042) virga-vmm's q35 has.
        const device = "virtio-blk-pci,drive=d0,disable-legacy=on,addr=0x3";
        const qemu = startQemu(1, "console=ttyS0", { file: disk, readOnly: false, device }, "q35");
        await withQemu(qemu, async () => {
          await qemu.serial.waitFor(/PROBE virtio-blk 0 pci=00:03\.0 capacity=2048 ro=0/, BOOT_MS);
          await qemu.serial.waitFor(/probe> /, BOOT_MS);
          qemu.serial.send("pci show 00:03.0");
          await qemu.serial.waitFor(/OK pci show/, BOOT_MS);
          const caps = qemu.serial.lines(/^pci 00:03\.0 cap /).join("\n");
          // QEMU's layout differs (BAR 4, and the PCI-configuration access capability); the four structures and MSI-X are there.
          for (const type of [1, 2, 3, 4]) assert.match(caps, new RegExp(`virtio type=${type} `));
          assert.match(caps, /msix vectors=2 /);
          const start = Date.now();
          qemu.serial.send("blk 0 write 3 7");
          await qemu.serial.waitFor(/OK blk write/, BOOT_MS);
          assert.ok(Date.now() - start < 2000, "the write's MSI-X interrupt did not arrive");
          qemu.serial.send("blk 0 verify 3 7");
          await qemu.serial.waitFor(/OK blk verify/, BOOT_MS);
          qemu.serial.send("poweroff");
          assert.equal(await qemu.exit, 0);
        });
        assert.deepEqual(readSector(disk, 3), sectorPattern(3, 7));
      } finally {
        tmp.cleanup();
      }
    },
  );

  it("writes a sector pattern over QEMU's virtio-blk that the host reads back", TEST, async () => {
    const tmp = tempDir();
    try {
      const disk = makeDisk(tmp.dir);
      const qemu = startQemu(1, "console=ttyS0", { file: disk, readOnly: false });
      await withQemu(qemu, async () => {
        await qemu.serial.waitFor(
          /PROBE virtio-blk 0 base=0x[0-9a-f]+ irq=\d+ capacity=2048 ro=0/,
          BOOT_MS,
        );
        await qemu.serial.waitFor(/probe> /, BOOT_MS);
        qemu.serial.send("blk 0 write 3 7");
        await qemu.serial.waitFor(/OK blk write/, BOOT_MS);
        qemu.serial.send("blk 0 verify 3 7");
        await qemu.serial.waitFor(/OK blk verify/, BOOT_MS);
        qemu.serial.send("poweroff");
        assert.equal(await qemu.exit, 0);
      });
      assert.deepEqual(readSector(disk, 3), sectorPattern(3, 7));
    } finally {
      tmp.cleanup();
    }
  });

  it("gets the virtio error status writing to a read-only disk", TEST, async () => {
    const tmp = tempDir();
    try {
      const disk = makeDisk(tmp.dir);
      writeFileSync(disk, sectorPattern(0, 9), { flag: "r+" });
      const qemu = startQemu(1, "console=ttyS0", { file: disk, readOnly: true });
      await withQemu(qemu, async () => {
        await qemu.serial.waitFor(/PROBE virtio-blk 0 .* ro=1/, BOOT_MS);
        await qemu.serial.waitFor(/probe> /, BOOT_MS);
        qemu.serial.send("blk 0 write 0 1");
        await qemu.serial.waitFor(/ERR blk write status=1/, BOOT_MS);
        qemu.serial.send("poweroff");
        assert.equal(await qemu.exit, 0);
      });
      assert.deepEqual(readSector(disk, 0), sectorPattern(0, 9));
    } finally {
      tmp.cleanup();
    }
  });
});
