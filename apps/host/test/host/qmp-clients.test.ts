// QMP driven by clients that are not ours: ncat, exactly as the StratoVirt
// user document drives it, and a small Python client written from QEMU's
// protocol specification that also passes a descriptor for getfd.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { tempDir } from "../support/disk";
import { probeArgs, requireKvmHost, waitForPath, withVmm } from "../support/guest";
import { repoRoot } from "../support/paths";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };
const PYTHON = "/usr/bin/python3";
const execFileAsync = promisify(execFile);
const pythonClient = path.join(repoRoot, "apps", "host", "test", "clients", "qmp_client.py");

function requireTool(command: string, pkg: string): void {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
  } catch {
    throw new Error(
      `${command} not installed (apt-get install ${pkg}; npm install does it as root)`,
    );
  }
}

/** Runs `ncat -U socket`, typing each line once the previous reply arrived. */
async function ncatSession(
  socketPath: string,
  lines: string[],
): Promise<Record<string, unknown>[]> {
  const ncat = spawn("ncat", ["-U", socketPath], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  ncat.stdout.setEncoding("utf8");
  ncat.stdout.on("data", (chunk: string) => (out += chunk));
  const messages = (): Record<string, unknown>[] =>
    out
      .split("\r\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const waitUntil = async (count: number): Promise<void> => {
    const deadline = Date.now() + 10000;
    while (messages().filter((m) => "return" in m || "error" in m || "QMP" in m).length < count) {
      if (Date.now() > deadline) throw new Error(`ncat transcript so far:\n${out}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await waitUntil(1);
  for (let i = 0; i < lines.length; i++) {
    ncat.stdin.write(`${lines[i]}\n`);
    await waitUntil(i + 2);
  }
  await new Promise((r) => setTimeout(r, 100));
  ncat.kill();
  return messages();
}

describe("QMP with other clients", () => {
  before(() => {
    requireKvmHost();
    requireTool("ncat", "ncat");
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not present (apt-get install python3)`);
  });

  it("ncat -U drives the user document's lifecycle, pasted as written", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      await withVmm(
        [...probeArgs({ smp: "2" }), "-qmp", `unix:${socketPath},server,nowait`],
        async (vm) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          await waitForPath(socketPath, vm);
          const transcript = await ncatSession(socketPath, [
            '{ "execute": "query-status" }',
            '{ "execute": "query-cpus" }',
            '{ "execute": "query-hotpluggable-cpus" }',
            '{"execute":"stop"}',
            '{ "execute": "query-status" }',
            '{"execute":"cont"}',
            '{"execute":"quit"}',
          ]);
          const kinds = transcript.map((m) =>
            "QMP" in m
              ? "greeting"
              : "event" in m
                ? `event:${String(m.event)}`
                : "return" in m
                  ? "return"
                  : "error",
          );
          assert.deepEqual(kinds, [
            "greeting",
            "return",
            "return",
            "return",
            "event:STOP",
            "return",
            "return",
            "event:RESUME",
            "return",
            "return",
            "event:SHUTDOWN",
          ]);
          const returns = transcript.filter((m) => "return" in m).map((m) => m.return);
          assert.deepEqual(returns[0], { running: true, singlestep: false, status: "running" });
          const cpus = returns[1] as {
            CPU: number;
            thread_id: number;
            props: Record<string, number>;
          }[];
          assert.deepEqual(
            cpus.map((c) => c.CPU),
            [0, 1],
          );
          assert.ok(cpus.every((c) => Number.isInteger(c.thread_id) && c.thread_id > 0));
          assert.deepEqual(returns[4], { running: false, singlestep: false, status: "paused" });
          const shutdown = transcript.at(-1) as { data: unknown; timestamp: { seconds: number } };
          assert.deepEqual(shutdown.data, { guest: false, reason: "host-qmp-quit" });
          assert.ok(Math.abs(shutdown.timestamp.seconds - Date.now() / 1000) < 60);
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it(
    "a client written from QEMU's protocol passes a file descriptor with getfd",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const socketPath = path.join(tmp.dir, "qmp.sock");
        const passed = path.join(tmp.dir, "passed-file");
        writeFileSync(passed, "virga");
        await withVmm([...probeArgs(), "-qmp", `unix:${socketPath},server,nowait`], async (vm) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          await waitForPath(socketPath, vm);
          // getfd's descriptors wait in the VM's control plane (the QMP
          // server, a child of the VM process started by the first client)
          // until a command takes them.
          const vmmPid = vm.child.pid ?? 0;
          const controlPlanePid = (): number =>
            Number(readFileSync(`/proc/${vmmPid}/task/${vmmPid}/children`, "utf8").trim());
          const openHere = (): boolean => {
            const pid = controlPlanePid();
            return readdirSync(`/proc/${pid}/fd`).some((fd) => {
              try {
                return readlinkSync(`/proc/${pid}/fd/${fd}`) === passed;
              } catch {
                return false;
              }
            });
          };
          type Step = { reply: Record<string, unknown>; events: unknown[] };
          const run = async (steps: unknown[]): Promise<Step[]> => {
            const { stdout } = await execFileAsync(
              PYTHON,
              [pythonClient, socketPath, JSON.stringify(steps)],
              {
                timeout: 20000,
              },
            );
            return stdout
              .trim()
              .split("\n")
              .slice(1)
              .map((l) => JSON.parse(l) as Step);
          };

          const first = await run([
            { execute: "qmp_capabilities" },
            { execute: "getfd", arguments: { fdname: "tap-fd" }, fd_path: passed },
            { execute: "getfd", arguments: { fdname: "nothing" } },
            { execute: "query-status" },
          ]);
          assert.deepEqual(first[0]?.reply, { return: {}, id: "py-1" });
          assert.deepEqual(first[1]?.reply, { return: {}, id: "py-2" });
          assert.deepEqual(first[2]?.reply.error, {
            class: "GenericError",
            desc: "No file descriptor supplied via SCM_RIGHTS",
          });
          assert.equal((first[3]?.reply.return as { status: string }).status, "running");
          assert.ok(openHere(), "the control plane holds the passed descriptor");

          const second = await run([
            { execute: "closefd", arguments: { fdname: "tap-fd" } },
            { execute: "closefd", arguments: { fdname: "tap-fd" } },
            { execute: "stop" },
            { execute: "cont" },
          ]);
          assert.deepEqual(second[0]?.reply, { return: {}, id: "py-1" });
          assert.match((second[1]?.reply.error as { desc: string }).desc, /'tap-fd' not found/);
          assert.deepEqual(
            second[2]?.events.map((e) => (e as { event: string }).event),
            ["STOP"],
          );
          assert.deepEqual(
            second[3]?.events.map((e) => (e as { event: string }).event),
            ["RESUME"],
          );
          assert.equal(openHere(), false, "closefd closed it");
          assert.equal(vm.running, true);
        });
      } finally {
        tmp.cleanup();
      }
    },
  );
});
