// QMP against a real virga-vmm running the probe guest: the greeting, run
// state, stop/cont really stopping the guest, vCPU thread ids, quit, -S,
// and SHUTDOWN events for each way a VM ends.
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { before, describe, it } from "node:test";
import { QmpClient } from "../../src/qmp/client";
import { tempDir } from "../support/disk";
import { connectQmp, probeArgs, requireKvmHost, waitForPath, withVmm } from "../support/guest";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };

function lastCount(text: string): number {
  const counts = [...text.matchAll(/count (\d+)/g)];
  return Number(counts.at(-1)?.[1] ?? 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runStatus(qmp: QmpClient): Promise<string> {
  return ((await qmp.execute("query-status")) as { status: string }).status;
}

describe("QMP on a running VM", () => {
  before(() => {
    requireKvmHost();
  });

  it("greets, reports the status, and stop/cont really pause the guest", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      await withVmm(
        [...probeArgs({ smp: "2" }), "-qmp", `unix:${socketPath},server,nowait`],
        async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          // The exact greeting, as a raw line.
          const raw = net.connect(socketPath);
          const greeting = await new Promise<string>((resolve) => {
            raw.once("data", (d: Buffer) => {
              resolve(d.toString("utf8"));
            });
          });
          raw.destroy();
          assert.equal(
            greeting,
            '{"QMP":{"version":{"qemu":{"micro":1,"minor":0,"major":5},"package":"Virga-0.1.0"},"capabilities":[]}}\r\n',
          );
          assert.equal(statSync(socketPath).mode & 0o777, 0o600);

          const qmp = await QmpClient.connect(socketPath);
          assert.deepEqual(await qmp.execute("qmp_capabilities"), {});
          assert.deepEqual(await qmp.execute("query-status"), {
            running: true,
            singlestep: false,
            status: "running",
          });

          vm.send("count");
          await vm.waitFor(/count 3\b/, BOOT_MS);
          await qmp.execute("stop");
          const stopEvent = qmp.messages.findIndex((m) => m.event === "STOP");
          const stopReturn = qmp.messages.findIndex((m) => "return" in m && m.id === "c3");
          assert.ok(
            stopEvent > 0 && stopEvent < stopReturn,
            "STOP is written before stop's return",
          );
          assert.deepEqual(await qmp.execute("query-status"), {
            running: false,
            singlestep: false,
            status: "paused",
          });
          await sleep(300);
          const frozen = lastCount(vm.serial.text);
          await sleep(1500);
          assert.equal(lastCount(vm.serial.text), frozen, "no count output while paused");

          await qmp.execute("cont");
          await qmp.waitForEvent("RESUME");
          await vm.waitFor(new RegExp(`count ${frozen + 3}\\b`), BOOT_MS);
          assert.deepEqual(await qmp.execute("query-status"), {
            running: true,
            singlestep: false,
            status: "running",
          });

          // Real vCPU threads: their ids are tasks of the VM process.
          const cpus = (await qmp.execute("query-cpus")) as { CPU: number; thread_id: number }[];
          assert.deepEqual(
            cpus.map((c) => c.CPU),
            [0, 1],
          );
          const tasks = readdirSync(`/proc/${vm.child.pid ?? 0}/task`).map(Number);
          for (const cpu of cpus)
            assert.ok(
              tasks.includes(cpu.thread_id),
              `thread ${cpu.thread_id} in ${tasks.join(",")}`,
            );
          qmp.close();
        },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("quit answers {}, sends SHUTDOWN, exits 0 and removes socket and pidfile", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      const pidfile = path.join(tmp.dir, "vm.pid");
      await withVmm(
        [...probeArgs(), "-qmp", `unix:${socketPath},server,nowait`, "-pidfile", pidfile],
        async (vm) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          const qmp = await connectQmp(socketPath, vm);
          const other = await QmpClient.connect(socketPath);
          assert.deepEqual(await qmp.execute("quit"), {});
          const shutdown = await qmp.waitForEvent("SHUTDOWN");
          assert.deepEqual(shutdown.data, { guest: false, reason: "host-qmp-quit" });
          assert.deepEqual((await other.waitForEvent("SHUTDOWN")).data, shutdown.data);
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          assert.equal(existsSync(socketPath), false, "socket removed");
          assert.equal(existsSync(pidfile), false, "pidfile removed");
        },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it(
    "system_reset reboots the guest with RESET; system_powerdown sends POWERDOWN",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const socketPath = path.join(tmp.dir, "qmp.sock");
        await withVmm(
          [...probeArgs({ smp: "2" }), "-qmp", `unix:${socketPath},server,nowait`],
          async (vm) => {
            await vm.waitFor(/PROBE ready/, BOOT_MS);
            const qmp = await connectQmp(socketPath, vm);
            assert.deepEqual(await qmp.execute("system_reset"), {});
            const reset = await qmp.waitForEvent("RESET");
            assert.deepEqual(reset.data, { guest: false, reason: "host-qmp-system-reset" });
            // The guest boots a second time, both CPUs again, and the VMM keeps running.
            await vm.waitFor(/PROBE boot entry=linux64/, BOOT_MS);
            await vm.waitFor(/PROBE cpus online=2/, BOOT_MS);
            await vm.waitFor(/PROBE ready/, BOOT_MS);
            assert.equal(vm.running, true);
            assert.deepEqual(await qmp.execute("system_powerdown"), {});
            await qmp.waitForEvent("POWERDOWN");
            // The probe guest has no ACPI button driver: it ignores the press.
            assert.equal(await runStatus(qmp), "running");
            qmp.close();
          },
        );
      } finally {
        tmp.cleanup();
      }
    },
  );

  it("-S starts in prelaunch and runs the guest on cont", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      await withVmm(
        [...probeArgs(), "-S", "-qmp", `unix:${socketPath},server,nowait`],
        async (vm) => {
          const qmp = await connectQmp(socketPath, vm);
          assert.deepEqual(await qmp.execute("query-status"), {
            running: false,
            singlestep: false,
            status: "prelaunch",
          });
          await sleep(500);
          assert.equal(vm.serial.text, "", "no guest output before cont");
          await qmp.execute("cont");
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          assert.equal(await runStatus(qmp), "running");
          qmp.close();
        },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("restarts a control plane that died, keeping the guest and its run state", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      await withVmm(
        [...probeArgs(), "-S", "-qmp", `unix:${socketPath},server,nowait`],
        async (vm) => {
          const vmmPid = vm.child.pid ?? 0;
          const controlPlane = (): number =>
            Number(readFileSync(`/proc/${vmmPid}/task/${vmmPid}/children`, "utf8").trim());
          const first = await connectQmp(socketPath, vm);
          assert.equal(await runStatus(first), "prelaunch");
          const killed = controlPlane();
          process.kill(killed, "SIGKILL");
          await first.closed();
          // The VM process starts another on the same socket, still in prelaunch.
          const second = await connectQmp(socketPath, vm);
          assert.ok(vm.running, "the VM process is still running");
          assert.notEqual(controlPlane(), killed);
          assert.equal(await runStatus(second), "prelaunch");
          await second.execute("cont");
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          await second.execute("stop");
          process.kill(controlPlane(), "SIGKILL");
          await second.closed();
          const third = await connectQmp(socketPath, vm);
          assert.equal(await runStatus(third), "paused");
          await third.execute("quit");
          assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("ends the VM with the reason when its control plane cannot run", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      const pidfile = path.join(tmp.dir, "vm.pid");
      // A control plane that dies at once, every time it is started.
      const broken = path.join(tmp.dir, "broken.cjs");
      writeFileSync(broken, "process.exit(3);\n");
      await withVmm(
        [...probeArgs(), "-qmp", `unix:${socketPath},server,nowait`, "-pidfile", pidfile],
        async (vm) => {
          // The control plane starts with the first client.
          await waitForPath(socketPath, vm);
          const client = net.connect(socketPath);
          client.on("error", () => undefined);
          assert.deepEqual(await vm.waitForExit(), { code: 1, signal: null });
          client.destroy();
          assert.match(
            vm.stderr,
            /virga-vmm: error: the control plane exited unexpectedly \(exit code 3\), 3 restarts in a minute/,
          );
          assert.equal(existsSync(socketPath), false, "socket removed");
          assert.equal(existsSync(pidfile), false, "pidfile removed");
        },
        { env: { ...process.env, VIRGA_CONTROL_PLANE: broken } },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("lists every possible vCPU with qom-path only on online ones", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      const args = [
        ...probeArgs({ smp: "2,maxcpus=4,sockets=2,cores=2" }),
        "-qmp",
        `unix:${socketPath},server,nowait`,
      ];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/PROBE ready/, BOOT_MS);
        assert.equal(vm.serial.lines(/^PROBE cpus online=/)[0], "PROBE cpus online=2");
        const qmp = await connectQmp(socketPath, vm);
        const cpus = (await qmp.execute("query-hotpluggable-cpus")) as Record<string, unknown>[];
        assert.equal(cpus.length, 4);
        assert.deepEqual(
          cpus.map((c) => "qom-path" in c),
          [true, true, false, false],
        );
        assert.deepEqual(cpus[2]?.props, { "core-id": 0, "socket-id": 1, "thread-id": 0 });
        qmp.close();
      });
    } finally {
      tmp.cleanup();
    }
  });

  it("reports guest power-off and SIGTERM as SHUTDOWN events", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      const args = [...probeArgs(), "-qmp", `unix:${socketPath},server,nowait`];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/probe> /, BOOT_MS);
        const qmp = await connectQmp(socketPath, vm);
        vm.send("poweroff");
        assert.deepEqual((await qmp.waitForEvent("SHUTDOWN")).data, {
          guest: true,
          reason: "guest-shutdown",
        });
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
      await withVmm(args, async (vm) => {
        await vm.waitFor(/PROBE ready/, BOOT_MS);
        const qmp = await connectQmp(socketPath, vm);
        vm.child.kill("SIGTERM");
        assert.deepEqual((await qmp.waitForEvent("SHUTDOWN")).data, {
          guest: false,
          reason: "host-signal",
        });
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        assert.equal(existsSync(socketPath), false);
      });
    } finally {
      tmp.cleanup();
    }
  });
});
