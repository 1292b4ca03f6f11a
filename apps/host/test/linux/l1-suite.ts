// Runs a set of Linux scenarios in one L1 machine with real KVM
// (test/nested/run-in-l1.sh): this machine's /dev/kvm (PVM) cannot run
// stock Linux. The scenarios run there (in-l1.ts) and report back; each
// becomes its own test.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { tempDir } from "../support/disk";
import { repoRoot } from "../support/paths";
import { requireLinuxGuest, runInL1 } from "./guest-images";
import type { ScenarioResult } from "./in-l1";
import type { Scenario } from "./scenarios";

export interface L1SuiteOptions {
  /** run-in-l1.sh --machine (default microvm). */
  machine?: string;
  /** in-l1.ts --set: which scenarios (default: scenarios.ts's). */
  set?: string;
}

const L1_TIMEOUT_S = 1500;
// run-in-l1.sh's status when L1 itself died or hung while the scenarios ran
// (an L1 kernel panic, or every L1 vCPU halted: QEMU 7.2's TCG SVM losing an
// interrupt, GUESTS.md). That is the emulator under the harness failing, not
// a guest or virga-vmm, so the scenarios get one fresh L1; a scenario that
// fails is never run again.
const L1_LOST = 91;

interface L1Run {
  results: ScenarioResult[];
  exitCode: number | null;
  log: string;
}

async function runScenariosInL1Once(options: L1SuiteOptions): Promise<L1Run> {
  requireLinuxGuest();
  const tmp = tempDir("virga-l1-");
  const out = path.join(tmp.dir, "results.json");
  const inner = path.join(repoRoot, "apps", "host", "dist", "test", "linux", "in-l1.js");
  try {
    const child = spawn(
      "bash",
      [
        runInL1,
        ...(options.machine === undefined ? [] : ["--machine", options.machine]),
        "--share",
        tmp.dir,
        "--timeout",
        String(L1_TIMEOUT_S),
        "--",
        process.execPath,
        inner,
        "--out",
        out,
        ...(options.set === undefined ? [] : ["--set", options.set]),
      ],
      { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
    );
    let log = "";
    child.stdout.on("data", (d: Buffer) => (log += d.toString()));
    child.stderr.on("data", (d: Buffer) => (log += d.toString()));
    const exitCode = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    const results = existsSync(out)
      ? (JSON.parse(readFileSync(out, "utf8")) as ScenarioResult[])
      : [];
    return { results, exitCode, log };
  } finally {
    tmp.cleanup();
  }
}

async function runScenariosInL1(options: L1SuiteOptions): Promise<L1Run> {
  const first = await runScenariosInL1Once(options);
  if (first.exitCode !== L1_LOST) return first;
  const second = await runScenariosInL1Once(options);
  return {
    ...second,
    log: `--- first L1 was lost (exit ${L1_LOST}); its output ends:\n${first.log.slice(-3000)}\n--- second L1:\n${second.log}`,
  };
}

/**
 * One L1 (run-in-l1.sh, `options.machine`) runs `scenarios` (in-l1.ts's
 * `--set`); each becomes a test here with its result.
 */
export function describeL1Suite(
  title: string,
  scenarios: Scenario[],
  options: L1SuiteOptions = {},
): void {
  describe(title, { timeout: (2 * L1_TIMEOUT_S + 60) * 1000 }, () => {
    let run: L1Run | Error;
    before(async () => {
      try {
        run = await runScenariosInL1(options);
        // Whether an NMI woke a quiet L1 is worth seeing even when all passed.
        for (const line of run.log.split("\n").filter((l) => l.includes("sent it an NMI")))
          console.log(`# ${line}`);
      } catch (error) {
        run = error instanceof Error ? error : new Error(String(error));
      }
    });

    for (const scenario of scenarios) {
      it(scenario.name, () => {
        if (run instanceof Error) throw run;
        const result = run.results.find((r) => r.name === scenario.name);
        assert.ok(
          result !== undefined,
          `no result (L1 exit ${String(run.exitCode)}); L1 output:\n${run.log.slice(-6000)}`,
        );
        if (result.faultedOnce !== undefined)
          console.log(
            `# ${scenario.name}: the first attempt met the emulator's fault (stall or triple fault) and it ran again:\n${result.faultedOnce}`,
          );
        assert.ok(result.ok, `${result.error ?? ""}\n--- L1 output:\n${run.log.slice(-6000)}`);
      });
    }
  });
}
