// virga-vmm and the control-plane host, without virgad: a VM told where the
// host is (VIRGA_CONTROL_HOST) serves QMP from a companion of its own while
// no host answers, moves to the host when one comes, outlives the host's
// deaths without counting them as control-plane restarts (retrying it for
// a moment, then a companion again), and ends after 3 failures of its own
// part inside a host in a minute, with the host's reason. Without the
// variable a VM gets its own companion, as qmp.test.ts checks.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { QmpClient } from "../../src/qmp/client";
import { tempDir } from "../support/disk";
import { connectQmp, probeArgs, requireKvmHost, waitForPath, withVmm } from "../support/guest";
import { untilRunningAnswers } from "../support/ncat";
import { hostDir } from "../support/paths";
import { childPids } from "../support/proc";

const TEST = { timeout: 90000 };
const hostScript = path.join(hostDir, "dist", "control-host.cjs");

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A control-plane host on `socketPath`, once it listens. */
async function startHost(socketPath: string): Promise<ChildProcess> {
  const host = spawn(
    process.execPath,
    ["--force-node-api-uncaught-exceptions-policy=true", hostScript, "--socket", socketPath],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  host.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const deadline = Date.now() + 10000;
  while (!stderr.includes("serving control planes")) {
    if (host.exitCode !== null || Date.now() > deadline)
      throw new Error(`the control-plane host did not start: ${stderr}`);
    await sleep(20);
  }
  return host;
}

async function kill(host: ChildProcess): Promise<void> {
  if (host.exitCode !== null || host.signalCode !== null) return;
  const exited = new Promise((resolve) => host.once("exit", resolve));
  host.kill("SIGKILL");
  await exited;
}

describe("virga-vmm with a control-plane host", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "uses a companion while no host answers, moves to the host, and outlives its deaths",
    TEST,
    async () => {
      const tmp = tempDir();
      const hosts: ChildProcess[] = [];
      try {
        const qmpSocket = path.join(tmp.dir, "qmp.sock");
        const hostSocket = path.join(tmp.dir, "host.sock");
        const log = path.join(tmp.dir, "vm.log");
        await withVmm(
          [...probeArgs(), "-qmp", `unix:${qmpSocket},server,nowait`, "-D", log],
          async (vm) => {
            const pid = vm.child.pid ?? 0;
            const first = await connectQmp(qmpSocket, vm);
            assert.equal(childPids(pid).length, 1, "a companion serves QMP while no host answers");

            hosts.push(await startHost(hostSocket));
            // The companion lets go (its clients see EOF) and the host takes over.
            await first.closed(5000);
            const moved = performance.now();
            await untilRunningAnswers(qmpSocket, moved, 5000);
            assert.deepEqual(childPids(pid), [], "no companion once the host serves");
            assert.match(
              readFileSync(log, "utf8"),
              /control plane: moved to the control-plane host/,
            );

            // More host deaths than the 3-restarts-a-minute rule allows:
            // none counts, a host back within the retry window takes over.
            for (let round = 0; round < 4; round++) {
              const client = await QmpClient.connect(qmpSocket);
              await kill(hosts[hosts.length - 1] as ChildProcess);
              await client.closed(5000);
              const killed = performance.now();
              hosts.push(await startHost(hostSocket));
              await untilRunningAnswers(qmpSocket, killed, 3000);
              assert.deepEqual(childPids(pid), [], `round ${round}: back on the host`);
            }
            assert.ok(vm.running, "the VM outlives the host's deaths");

            // No host comes back: a companion of its own after the retry window.
            await kill(hosts[hosts.length - 1] as ChildProcess);
            const killed = performance.now();
            const took = await untilRunningAnswers(qmpSocket, killed, 5000);
            console.log(`QMP from a companion ${took.toFixed(0)} ms after the host's kill -9`);
            assert.ok(took < 2500, `QMP back within ~2 s (${took.toFixed(0)} ms)`);
            assert.equal(childPids(pid).length, 1, "a companion serves QMP again");

            const last = await QmpClient.connect(qmpSocket);
            await last.execute("quit");
            assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          },
          { env: { ...process.env, VIRGA_CONTROL_HOST: hostSocket } },
        );
      } finally {
        for (const host of hosts) await kill(host);
        tmp.cleanup();
      }
    },
  );

  it(
    "ends a VM whose part keeps failing inside the host, with the host's reason",
    TEST,
    async () => {
      const tmp = tempDir();
      let host: ChildProcess | null = null;
      try {
        const qmpSocket = path.join(tmp.dir, "qmp.sock");
        const hostSocket = path.join(tmp.dir, "host.sock");
        // A host in which this VM's part fails at once, every time.
        const failing = path.join(tmp.dir, "failing-host.cjs");
        writeFileSync(
          failing,
          `require("node:net").createServer((s) => {
           s.once("data", () => s.end('{"notice":"restart","message":"boom"}\\n'));
         }).listen(process.argv[2], () => process.stderr.write("listening\\n"));\n`,
        );
        host = spawn(process.execPath, [failing, hostSocket], { stdio: "ignore" });
        await waitForPath(hostSocket);
        await withVmm(
          [...probeArgs(), "-qmp", `unix:${qmpSocket},server,nowait`],
          async (vm) => {
            await waitForPath(qmpSocket, vm);
            const client = await connectQmp(qmpSocket, vm).catch(() => null);
            assert.deepEqual(await vm.waitForExit(), { code: 1, signal: null });
            client?.close();
            assert.match(
              vm.stderr,
              /virga-vmm: error: the control plane failed in the control-plane host \(boom\), 3 restarts in a minute/,
            );
          },
          { env: { ...process.env, VIRGA_CONTROL_HOST: hostSocket } },
        );
      } finally {
        if (host !== null) await kill(host);
        tmp.cleanup();
      }
    },
  );
});
