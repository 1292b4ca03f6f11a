// The probe guest boots under virga-vmm on this machine's KVM: vCPUs, command
// line, memory, entries, and the ways a VM ends.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { tempDir } from "../support/disk";
import { probeArgs, requireKvmHost, withVmm } from "../support/guest";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };
const MiB = 1024 * 1024;

describe("probe guest boot", () => {
  before(() => {
    requireKvmHost();
  });

  it("boots to PROBE ready with -smp 1 and powers off with exit code 0", TEST, async () => {
    await withVmm(probeArgs({ smp: "1" }), async (vm) => {
      await vm.waitFor(/PROBE boot entry=linux64/, BOOT_MS);
      await vm.waitFor(/PROBE cpus online=1\b/, BOOT_MS);
      await vm.waitFor(/PROBE ready/, BOOT_MS);
      await vm.waitFor(/probe> /, BOOT_MS);
      vm.send("poweroff");
      await vm.waitFor(/OK poweroff/);
      assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      assert.equal(vm.stderr, "");
    });
  });

  it("brings up 4 vCPUs with -smp 4, each reporting in", TEST, async () => {
    await withVmm(probeArgs({ smp: "4" }), async (vm) => {
      await vm.waitFor(/PROBE ready/, BOOT_MS);
      const cpus = vm.serial.lines(/^PROBE cpu \d+ /);
      assert.deepEqual(
        cpus,
        [0, 1, 2, 3].map((i) => `PROBE cpu ${i} apic=${i} online`),
      );
      assert.equal(vm.serial.lines(/^PROBE cpus online=/)[0], "PROBE cpus online=4");
    });
  });

  it("passes -append and -m through to the guest", TEST, async () => {
    const append = "console=ttyS0 virga.test=abc-123 quiet";
    await withVmm(probeArgs({ memory: "256M", append }), async (vm) => {
      await vm.waitFor(/PROBE ready/, BOOT_MS);
      const cmdline = vm.serial.lines(/^PROBE cmdline /)[0] ?? "";
      assert.ok(cmdline.startsWith(`PROBE cmdline ${append} `), cmdline);
      // 6 block slots + 2 NIC slots announced on the command line (QMP.md).
      assert.equal(cmdline.match(/virtio_mmio\.device=/g)?.length, 8, cmdline);
      const usable = Number(/usable=(\d+)/.exec(vm.serial.lines(/^PROBE mem /)[0] ?? "")?.[1]);
      // Usable RAM is the configured size less the legacy hole below 1 MiB
      // and what the VMM reserves there (boot structures, MP table).
      assert.ok(usable <= 256 * MiB && usable > 256 * MiB - 2 * MiB, `usable=${usable}`);
      const e820 = vm.serial.lines(/^PROBE e820 /);
      const top = Math.max(...e820.map((l) => (l.endsWith(" 1") ? Number(l.split(" ")[3]) : 0)));
      assert.equal(top, 256 * MiB, e820.join("\n"));
    });
  });

  it("boots through the PVH entry with -boot-entry pvh", TEST, async () => {
    await withVmm([...probeArgs({ smp: "2" }), "-boot-entry", "pvh"], async (vm) => {
      await vm.waitFor(/PROBE boot entry=pvh/, BOOT_MS);
      await vm.waitFor(/PROBE cpus online=2/, BOOT_MS);
      await vm.waitFor(/PROBE ready/, BOOT_MS);
    });
  });

  it(
    "ends with exit code 0 when the guest reboots (i8042 reset), logging which way it ended",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const log = path.join(tmp.dir, "vm.log");
        await withVmm([...probeArgs(), "-D", log], async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          vm.send("reboot");
          await vm.waitFor(/OK reboot/);
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          assert.equal(vm.stderr, "");
        });
        assert.match(readFileSync(log, "utf8"), /shutdown: guest-reset \(i8042 reset line\)\n/);
        await withVmm([...probeArgs(), "-D", log], async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          vm.send("poweroff");
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        });
        assert.match(
          readFileSync(log, "utf8"),
          /shutdown: guest-shutdown \(ACPI sleep control: S5\)\n/,
        );
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "ends with exit code 0 on a guest triple fault, saying where on stderr and in the log",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const log = path.join(tmp.dir, "vm.log");
        await withVmm([...probeArgs({ smp: "2" }), "-D", log], async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          vm.send("crash");
          await vm.waitFor(/OK crash/);
          // A PC resets on a triple fault; like QEMU's -no-reboot that ends the VM.
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          assert.match(
            vm.stderr,
            /^virga-vmm: vCPU 0 triple fault at rip 0x[0-9a-f]+ \(rsp 0x[0-9a-f]+, cs 0x8, cr0 0x[0-9a-f]+, cr3 0x[0-9a-f]+, cr4 0x[0-9a-f]+, efer 0x[0-9a-f]+\); a reset ends the VM\n$/,
          );
        });
        assert.match(
          readFileSync(log, "utf8"),
          /shutdown: guest-reset \(vCPU 0 triple fault at rip 0x/,
        );
      } finally {
        tmp.cleanup();
      }
    },
  );

  it("ends with exit code 0 on SIGTERM and removes its pidfile", TEST, async () => {
    const tmp = tempDir();
    try {
      const pidfile = path.join(tmp.dir, "vm.pid");
      await withVmm([...probeArgs(), "-pidfile", pidfile], async (vm) => {
        await vm.waitFor(/PROBE ready/, BOOT_MS);
        assert.ok(existsSync(pidfile));
        vm.child.kill("SIGTERM");
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        assert.equal(existsSync(pidfile), false);
      });
    } finally {
      tmp.cleanup();
    }
  });

  it("exits 1 with the reason when the VM cannot be built", TEST, async () => {
    const tmp = tempDir();
    try {
      const notAKernel = path.join(tmp.dir, "garbage.bin");
      writeFileSync(notAKernel, Buffer.alloc(4096, 0x5a));
      await withVmm(["-kernel", notAKernel], async (vm) => {
        assert.deepEqual(await vm.waitForExit(), { code: 1, signal: null });
        assert.match(vm.stderr, /^virga-vmm: error: .+/);
        assert.equal(vm.stderr.trim().split("\n").length, 1, vm.stderr);
      });
    } finally {
      tmp.cleanup();
    }
  });
});
