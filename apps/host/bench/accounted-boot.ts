// Where virga-vmm's boot time goes, from the per-vCPU line of its -D log
// (first guest entry, exits handled, time inside KVM_RUN), for the boot
// figures of `npm run bench linux` on either board.
import { readFileSync, rmSync } from "node:fs";
import { median, startVmm } from "./measure";

/** Where virga-vmm's boot went, from its -D log line for vcpu0 at exit. */
export interface Accounting {
  readyMs: number;
  /** Ready marker → process exit (the guest's last markers and power-off). */
  tailMs: number;
  startToFirstEntryMs: number;
  exits: number;
  runMs: number;
  exitHandlingMs: number;
  /** At least this much of the boot to ready was inside KVM_RUN. */
  runBeforeReadyMs: number;
}

const VCPU0_LINE =
  /vcpu0: (\d+) exits \(.*\), ([\d.]+) ms in KVM_RUN, ([\d.]+) ms handling exits, first guest entry ([\d.]+) ms after start/;

// One boot that runs to the guest's own power-off, so the VMM writes its
// per-vCPU accounting to the -D log. Time inside KVM_RUN is the guest's
// code plus the kernel's exit handling: the same for any VMM that gives the
// guest the same machine. Up to the marker it is at least the total less
// everything after the marker.
export async function accountedBoot(
  command: string,
  args: string[],
  marker: string,
  log: string,
): Promise<Accounting> {
  rmSync(log, { force: true });
  const vmm = startVmm(command, [...args, "-D", log], marker, 180000);
  try {
    const readyMs = await vmm.ready;
    const exitMs = await Promise.race([
      vmm.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => {
          reject(new Error("the guest did not power off within 60 s of its ready marker"));
        }, 60000),
      ),
    ]);
    const match = VCPU0_LINE.exec(readFileSync(log, "utf8"));
    if (match === null) throw new Error(`no vcpu0 accounting line in ${log}`);
    const [exits, runMs, exitHandlingMs, startToFirstEntryMs] = match.slice(1).map(Number);
    const tailMs = exitMs - readyMs;
    return {
      readyMs,
      tailMs,
      startToFirstEntryMs: startToFirstEntryMs ?? 0,
      exits: exits ?? 0,
      runMs: runMs ?? 0,
      exitHandlingMs: exitHandlingMs ?? 0,
      runBeforeReadyMs: (runMs ?? 0) - tailMs,
    };
  } finally {
    vmm.child.kill("SIGKILL");
    await vmm.exited;
  }
}

export function describeAccounting(i: number, one: Accounting): string {
  return (
    `accounted run ${i}: ready ${one.readyMs.toFixed(0)} ms; first guest entry ${one.startToFirstEntryMs.toFixed(0)} ms; ` +
    `${one.exits} exits handled in ${one.exitHandlingMs.toFixed(0)} ms; ` +
    `in KVM_RUN ${one.runMs.toFixed(0)} ms to exit, >= ${one.runBeforeReadyMs.toFixed(0)} ms before ready`
  );
}

/** The medians over accounted boots, with every boot kept. */
export function summariseAccounting(accounted: Accounting[]) {
  const medianOf = (pick: (a: Accounting) => number) => median(accounted.map(pick));
  return {
    readyMs: medianOf((a) => a.readyMs),
    startToFirstEntryMs: medianOf((a) => a.startToFirstEntryMs),
    exits: medianOf((a) => a.exits),
    exitHandlingMs: medianOf((a) => a.exitHandlingMs),
    runBeforeReadyMs: medianOf((a) => a.runBeforeReadyMs),
    runs: accounted,
  };
}
