// `npm run bench linux`: boots one L1 machine with real KVM (the host's PVM
// cannot run stock Linux) and compares Linux boot times there.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const root = path.resolve(__dirname, "..", "..", "..", "..");

export function runLinuxBench(runs: number, smp: number, memMiB: number): void {
  const scratch = mkdtempSync(path.join(tmpdir(), "virga-bench-linux-"));
  try {
    const out = path.join(scratch, "linux.json");
    console.log(
      `linux: ${runs} runs each inside one L1 machine, ${smp} vCPU(s), ${memMiB} MiB (alternating)`,
    );
    const run = spawnSync(
      "bash",
      [
        path.join(root, "apps", "host", "test", "nested", "run-in-l1.sh"),
        "--share",
        scratch,
        "--timeout",
        "3000",
        "--",
        process.execPath,
        path.join(root, "apps", "host", "dist", "bench", "linux-in-l1.js"),
        "--runs",
        String(runs),
        "--smp",
        String(smp),
        "--mem",
        String(memMiB),
        "--out",
        out,
      ],
      { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
    );
    if (run.status !== 0) throw new Error(`the L1 run failed (exit ${String(run.status)})`);
    const result = JSON.parse(readFileSync(out, "utf8")) as {
      virga: { medianMs: number };
      qemu: { medianMs: number };
      qemuNoDevices: { medianMs: number };
      virgaAccounting: {
        readyMs: number;
        startToFirstEntryMs: number;
        exits: number;
        exitHandlingMs: number;
        runBeforeReadyMs: number;
      };
    };
    const ratio = result.virga.medianMs / result.qemu.medianMs;
    const bareRatio = result.virga.medianMs / result.qemuNoDevices.medianMs;
    console.log(
      `process start -> VIRGA-GUEST ready, median: virga-vmm ${result.virga.medianMs.toFixed(0)} ms, ` +
        `qemu microvm with the same disks ${result.qemu.medianMs.toFixed(0)} ms, ratio ${ratio.toFixed(2)} ` +
        `(target <= 0.6: ${ratio <= 0.6 ? "met" : "not met"}); ` +
        `qemu microvm with no devices ${result.qemuNoDevices.medianMs.toFixed(0)} ms, ratio ${bareRatio.toFixed(2)}`,
    );
    const a = result.virgaAccounting;
    console.log(
      `where virga-vmm's ${a.readyMs.toFixed(0)} ms to ready go (median of ${runs} more runs to power-off, -D log): ` +
        `first guest entry ${a.startToFirstEntryMs.toFixed(0)} ms after start, ${a.exits.toFixed(0)} exits handled in ${a.exitHandlingMs.toFixed(0)} ms, ` +
        `and at least ${a.runBeforeReadyMs.toFixed(0)} ms inside KVM_RUN (the guest's code and the host kernel's KVM, none of it ` +
        `virga-vmm's own code): ${(a.runBeforeReadyMs / result.qemu.medianMs).toFixed(2)} of QEMU's time by itself`,
    );
    const outDir = path.join(root, "bench-results");
    mkdirSync(outDir, { recursive: true });
    writeFileSync(
      path.join(outDir, "linux.json"),
      JSON.stringify({ date: new Date().toISOString(), ratio, bareRatio, ...result }, null, 2) +
        "\n",
    );
    console.log("wrote bench-results/linux.json");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
