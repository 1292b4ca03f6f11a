// query-stats against a real virga-vmm running the probe guest: the vCPU
// run-loop counters move with what the guest does, stop freezes them, bad
// arguments get errors that name the field while the guest runs on, and the
// -D log gets one line per vCPU as the VM ends.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import type { QmpClient } from "../../src/qmp/client";
import { QmpReplyError } from "../../src/qmp/client";
import { tempDir } from "../support/disk";
import { connectQmp, probeArgs, requireKvmHost, withVmm, type VmmProcess } from "../support/guest";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };

interface VcpuStats {
  provider: string;
  "qom-path": string;
  stats: { name: string; value: number }[];
}

async function vcpuStats(
  qmp: QmpClient,
  args: Record<string, unknown> = {},
): Promise<Map<string, Record<string, number>>> {
  const reply = (await qmp.execute("query-stats", { target: "vcpu", ...args })) as VcpuStats[];
  return new Map(
    reply.map((entry) => {
      assert.equal(entry.provider, "virga");
      return [entry["qom-path"], Object.fromEntries(entry.stats.map((s) => [s.name, s.value]))];
    }),
  );
}

async function rejection(promise: Promise<unknown>): Promise<QmpReplyError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof QmpReplyError, String(error));
    return error;
  }
  assert.fail("the command succeeded");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CPU0 = "/machine/unattached/device[0]";
const CPU1 = "/machine/unattached/device[1]";

/** A 2-vCPU probe guest at its prompt, with a QMP client connected. */
async function withProbeQmp(
  body: (vm: VmmProcess, qmp: QmpClient) => Promise<void>,
): Promise<void> {
  const tmp = tempDir();
  try {
    const socketPath = path.join(tmp.dir, "qmp.sock");
    await withVmm(
      [...probeArgs({ smp: "2" }), "-qmp", `unix:${socketPath},server,nowait`],
      async (vm) => {
        await vm.waitFor(/probe> /, BOOT_MS);
        const qmp = await connectQmp(socketPath, vm);
        try {
          await body(vm, qmp);
        } finally {
          qmp.close();
        }
      },
    );
  } finally {
    tmp.cleanup();
  }
}

describe("QMP query-stats on a running VM", () => {
  before(() => {
    requireKvmHost();
  });

  it("counts each vCPU's exits and time, frozen while stopped", TEST, async () => {
    const started = performance.now();
    await withProbeQmp(async (vm, qmp) => {
      const first = await vcpuStats(qmp);
      assert.deepEqual([...first.keys()], [CPU0, CPU1]);
      const cpu0 = first.get(CPU0) ?? {};
      // The probe polls the UART (port I/O) for every byte it printed and
      // set up its virtio-mmio slots with MMIO: the boot took exits of both.
      assert.ok((cpu0.io_exits ?? 0) > 20, `io_exits ${cpu0.io_exits}`);
      assert.ok((cpu0.mmio_exits ?? 0) > 0, `mmio_exits ${cpu0.mmio_exits}`);
      assert.ok(
        (cpu0.exits ?? 0) >= (cpu0.io_exits ?? 0) + (cpu0.mmio_exits ?? 0),
        "every I/O and MMIO exit is an exit",
      );
      assert.ok((cpu0.run_ns ?? 0) > 0 && (cpu0.exit_handling_ns ?? 0) > 0);
      const sinceSpawnNs = (performance.now() - started) * 1e6;
      for (const [cpu, stats] of first) {
        const entry = stats.start_to_first_entry_ns ?? 0;
        assert.ok(entry > 0 && entry < sinceSpawnNs, `${cpu} first entry ${entry} ns`);
      }

      // Output costs exits: `info` prints a few hundred bytes, checking the
      // UART's line status (port I/O) for room as it goes.
      vm.send("info");
      await vm.waitFor(/OK info/, BOOT_MS);
      const afterInfo = (await vcpuStats(qmp)).get(CPU0) ?? {};
      assert.ok(
        (afterInfo.io_exits ?? 0) > (cpu0.io_exits ?? 0) + 20,
        `io_exits ${cpu0.io_exits} -> ${afterInfo.io_exits}`,
      );

      // Stopped vCPUs neither run nor handle exits; stopping kicked them.
      await qmp.execute("stop");
      const stopped = await vcpuStats(qmp);
      await sleep(400);
      const later = await vcpuStats(qmp);
      for (const cpu of [CPU0, CPU1]) {
        assert.equal(
          later.get(cpu)?.run_ns,
          stopped.get(cpu)?.run_ns,
          `${cpu} run_ns while stopped`,
        );
        assert.equal(later.get(cpu)?.exit_handling_ns, stopped.get(cpu)?.exit_handling_ns);
        assert.ok((stopped.get(cpu)?.signal_exits ?? 0) >= 1, `${cpu} was kicked`);
      }
      await qmp.execute("cont");
      await sleep(300);
      const resumed = (await vcpuStats(qmp)).get(CPU1) ?? {};
      assert.ok(
        (resumed.run_ns ?? 0) > (later.get(CPU1)?.run_ns ?? 0),
        "run_ns grows again after cont",
      );
    });
  });

  it("filters by vCPU and name, and names the field of a bad argument", TEST, async () => {
    await withProbeQmp(async (vm, qmp) => {
      const only = await vcpuStats(qmp, {
        vcpus: [CPU1],
        providers: [{ provider: "virga", names: ["exits", "run_ns"] }],
      });
      assert.deepEqual([...only.keys()], [CPU1]);
      assert.deepEqual(Object.keys(only.get(CPU1) ?? {}), ["exits", "run_ns"]);
      assert.deepEqual(await qmp.execute("query-stats", { target: "vm" }), []);

      const schemas = (await qmp.execute("query-stats-schemas")) as {
        target: string;
        stats: { name: string; unit?: string; exponent?: number }[];
      }[];
      const [schema] = schemas;
      assert.equal(schema?.target, "vcpu");
      assert.deepEqual(
        schema.stats.find((s) => s.name === "run_ns"),
        { name: "run_ns", type: "cumulative", unit: "seconds", base: 10, exponent: -9 },
      );

      const noCpu = await rejection(
        qmp.execute("query-stats", {
          target: "vcpu",
          vcpus: ["/machine/unattached/device[7]"],
        }),
      );
      assert.match(noCpu.message, /'vcpus'.*device\[7\].*expected one of .*device\[0\]/);
      const noName = await rejection(
        qmp.execute("query-stats", {
          target: "vcpu",
          providers: [{ provider: "virga", names: ["halt_exits"] }],
        }),
      );
      assert.match(noName.message, /'providers.names'.*halt_exits.*expected one of exits/);
      const badTarget = await rejection(qmp.execute("query-stats", { target: "cpu" }));
      assert.match(badTarget.message, /target/);
      const badProvider = await rejection(
        qmp.execute("query-stats", { target: "vcpu", providers: [{ provider: "kvm" }] }),
      );
      assert.match(badProvider.message, /provider/);

      // Nothing of that reached the guest: it still answers.
      assert.equal(((await qmp.execute("query-status")) as { status: string }).status, "running");
      vm.send("info");
      await vm.waitFor(/OK info/, BOOT_MS);
    });
  });

  it("logs where each vCPU's time went when the VM ends", TEST, async () => {
    const tmp = tempDir();
    try {
      const log = path.join(tmp.dir, "vm.log");
      await withVmm([...probeArgs({ smp: "2" }), "-D", log], async (vm) => {
        await vm.waitFor(/probe> /, BOOT_MS);
        vm.send("poweroff");
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
      const lines = readFileSync(log, "utf8")
        .split("\n")
        .filter((line) => / vcpu\d: /.test(line));
      assert.equal(lines.length, 2, lines.join("\n"));
      assert.match(
        lines[0] ?? "",
        /vcpu0: \d+ exits \(\d+ I\/O, \d+ MMIO, \d+ signal\), [\d.]+ ms in KVM_RUN, [\d.]+ ms handling exits, first guest entry [\d.]+ ms after start$/,
      );
      assert.match(lines[1] ?? "", /^.*vcpu1: /);
    } finally {
      tmp.cleanup();
    }
  });
});
