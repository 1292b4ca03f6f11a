// The q35 board under virga-vmm on this machine's KVM: the probe guest
// finds pcie.0 through the ACPI MCFG and scans it over ECAM; the machine
// boots, resets and powers off as the microvm does; what q35 does not
// have yet is refused by name and the guest runs on (docs/q35.md).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { QmpReplyError, type QmpClient } from "../../src/qmp/client";
import { tempDir } from "../support/disk";
import { connectQmp, requireKvmHost, withVmm } from "../support/guest";
import { probeGuest } from "../support/paths";
import { pciFunctions } from "../support/pci";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };

/** The probe guest on -machine q35. */
function q35Args(extra: readonly string[] = []): string[] {
  return ["-machine", "q35", "-kernel", probeGuest, "-smp", "1", "-m", "128", ...extra];
}

async function refused(
  qmp: QmpClient,
  command: string,
  args: Record<string, unknown>,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(
    qmp.execute(command, args),
    (error: unknown) => error instanceof QmpReplyError && pattern.test(error.message),
  );
}

describe("q35 machine", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "the probe's ECAM scan finds the host bridge 00:00.0 (8086:29c0, class 0600) alone on pcie.0",
    TEST,
    async () => {
      await withVmm(q35Args(), async (vm) => {
        await vm.waitFor(/probe> /, BOOT_MS);
        // No virtio-mmio slots on this board.
        assert.equal(vm.serial.lines(/^PROBE cmdline /)[0], "PROBE cmdline ");
        vm.send("pci");
        await vm.waitFor(/OK pci \d+/, BOOT_MS);
        assert.equal(vm.serial.lines(/^pci ecam /)[0], "pci ecam 0xe0000000 buses 00-ff");
        assert.deepEqual(pciFunctions(vm.serial.lines(/^pci /)), ["00:00.0 8086:29c0 060000"]);
        vm.send("poweroff");
        await vm.waitFor(/OK poweroff/);
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        assert.equal(vm.stderr, "");
      });
    },
  );

  it(
    "resets like the microvm; hot-plug onto pcie.0 is refused by name and the guest runs on",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const socketPath = path.join(tmp.dir, "qmp.sock");
        await withVmm(q35Args(["-qmp", `unix:${socketPath},server,nowait`]), async (vm) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          const qmp = await connectQmp(socketPath, vm);
          assert.deepEqual(await qmp.execute("system_reset"), {});
          await qmp.waitForEvent("RESET");
          await vm.waitFor(/PROBE boot entry/, BOOT_MS);
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          await refused(
            qmp,
            "device_add",
            { driver: "virtio-blk-pci", id: "d1", drive: "x", bus: "pcie.0" },
            /bus: pcie\.0 has no hot-plug controller; plug virtio-blk-pci into a pcie-root-port \(the command line has none\)$/,
          );
          assert.deepEqual(await qmp.execute("query-status"), {
            running: true,
            singlestep: false,
            status: "running",
          });
          vm.send("pci");
          await vm.waitFor(/OK pci 1/, BOOT_MS);
          qmp.close();
        });
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "a guest reset through the Q35 reset control register (0xcf9) ends the VM as the microvm's do",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const log = path.join(tmp.dir, "vm.log");
        await withVmm(q35Args(["-D", log]), async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          vm.send("reboot cf9");
          await vm.waitFor(/OK reboot/);
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          assert.equal(vm.stderr, "");
        });
        assert.match(
          readFileSync(log, "utf8"),
          /shutdown: guest-reset \(Q35 reset control register \(0xcf9\)\)\n/,
        );
      } finally {
        tmp.cleanup();
      }
    },
  );
});
