// The control-plane host under virgad, with 20 managed VMs: one Node process
// serves all their QMP sockets (no VM has a companion); while virgad is
// stopped each socket still answers an ncat-style client; a new virgad
// re-attaches to all of them and adopts the host; when the host is killed
// every VM keeps running, QMP comes back for each within ~2 s, and virgad
// starts the host again. Then one VM's socket is flooded (rate limit off)
// while the others are queried: their latency stays close to idle.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { QmpClient } from "../../src/qmp/client";
import { percentile } from "../../bench/measure";
import { requireKvmHost } from "../support/guest";
import { ncatQueryStatus, untilRunningAnswers } from "../support/ncat";
import { childPids } from "../support/proc";
import { VirgadFixture, alive, waitUntil, type VirgadProcess } from "./harness";

const VMS = 20;
const TEST = { timeout: 180000 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A client flooding a QMP socket (argv[1]) until SIGTERM; then prints how many replies it read. */
const FLOODER = `
const socket = require("node:net").connect(process.argv[1]);
const batch = Buffer.from('{"execute":"query-status"}'.repeat(2000));
let replies = 0;
socket.on("data", (chunk) => {
  for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) replies++;
});
const pump = () => { while (socket.write(batch)); };
socket.on("drain", pump);
socket.once("connect", () => { process.stdout.write("flooding\\n"); pump(); });
process.on("SIGTERM", () => { process.stdout.write("replies " + replies + "\\n", () => process.exit(0)); });
`;

describe("the control-plane host under virgad", () => {
  const fx = new VirgadFixture();
  const ids = Array.from({ length: VMS }, (_, i) => `h${i}`);
  const qmpSocket = (id: string): string => path.join(fx.runDir, "vms", id, "qmp.sock");
  const hostPid = (): number =>
    Number(readFileSync(path.join(fx.runDir, "control-host.pid"), "utf8").trim());
  let virgad: VirgadProcess;
  let pids: number[] = [];

  /** A failure carries virgad's, the host's and the VMs' logs. */
  const withTranscript = async (body: () => Promise<void>): Promise<void> => {
    try {
      await body();
    } catch (error) {
      if (error instanceof Error) error.message += `\n${fx.transcript()}`;
      throw error;
    }
  };

  /** Every VM on the host: none has a companion, each log says so. */
  const allOnHost = (): boolean =>
    pids.every((pid) => childPids(pid).length === 0) &&
    ids.every((id) =>
      /control plane: (on|back on|moved to) the control-plane host/.test(
        readFileSync(path.join(fx.runDir, "vms", id, "log"), "utf8"),
      ),
    );

  before(async () => {
    requireKvmHost();
    virgad = await fx.start();
    const client = virgad.client();
    const config = fx.probeConfig();
    for (const id of ids) await client.vm.create.mutate({ id, config });
    // One API call per VM, all at once.
    const started = await Promise.all(ids.map((id) => client.vm.start.mutate({ id })));
    for (const vm of started) fx.track(vm.pid);
    pids = started.map((vm) => vm.pid ?? 0);
  });

  after(async () => {
    await fx.cleanup();
  });

  it(
    "serves every VM from one host; QMP answers with virgad stopped, after its restart, and within ~2 s of the host's death",
    TEST,
    () =>
      withTranscript(async () => {
        const firstHost = hostPid();
        assert.ok(alive(firstHost), "the control-plane host runs");
        await waitUntil(allOnHost, "every VM to be served by the host", 10000);

        await virgad.stop();
        assert.ok(alive(firstHost), "the host outlives virgad");
        for (const id of ids) {
          assert.match(
            ncatQueryStatus(qmpSocket(id)),
            /^\{"QMP":.*\r\n\{"return":\{"running":true,.*"status":"running"\}\}\r\n$/,
          );
        }

        virgad = await fx.start();
        const client = virgad.client();
        const list = await client.vm.list.query();
        const byId = new Map(list.map((vm) => [vm.id, vm]));
        ids.forEach((id, i) => {
          assert.equal(byId.get(id)?.state, "running", id);
          assert.equal(byId.get(id)?.pid, pids[i], `${id} is the same process`);
        });
        for (const id of ids) {
          assert.deepEqual(await client.vm.qmp.mutate({ id, execute: "query-status" }), {
            return: { running: true, singlestep: false, status: "running" },
          });
        }
        assert.equal(hostPid(), firstHost, "the new virgad adopts the running host");

        const killed = performance.now();
        process.kill(firstHost, "SIGKILL");
        const comeback = await Promise.all(
          ids.map((id) => untilRunningAnswers(qmpSocket(id), killed, 5000)),
        );
        console.log(
          `QMP back after the host's kill -9 (ms): median ${percentile(comeback, 50).toFixed(0)}, slowest ${Math.max(...comeback).toFixed(0)}`,
        );
        for (const pid of pids) assert.ok(alive(pid), `VM pid ${pid} keeps running`);
        assert.ok(Math.max(...comeback) < 2500, `every VM's QMP is back within ~2 s`);
        await waitUntil(
          () => hostPid() !== firstHost && alive(hostPid()),
          "virgad to start the host again",
          5000,
        );
        await waitUntil(allOnHost, "every VM to be on the new host", 10000);
        // virgad's own QMP links come back too.
        for (const id of ids) {
          const deadline = Date.now() + 5000;
          for (;;) {
            try {
              await client.vm.qmp.mutate({ id, execute: "query-status" });
              break;
            } catch (error) {
              if (Date.now() > deadline) throw error;
              await sleep(100);
            }
          }
        }
      }),
  );

  it("gives another run directory its own host, replacing a stale socket file there", TEST, () =>
    withTranscript(async () => {
      const other = new VirgadFixture();
      try {
        // What a host killed with its machine leaves behind: a socket file nobody answers on.
        mkdirSync(other.runDir, { recursive: true, mode: 0o700 });
        const stale = path.join(other.runDir, "control-host.sock");
        spawnSync(process.execPath, [
          "-e",
          `require("net").createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, "SIGKILL"))`,
        ]);
        assert.ok(existsSync(stale), "a stale socket file to begin with");
        const second = await other.start();
        const otherHost = Number(
          readFileSync(path.join(other.runDir, "control-host.pid"), "utf8").trim(),
        );
        assert.ok(alive(otherHost) && otherHost !== hostPid(), "a host of its own");
        const client = second.client();
        await client.vm.create.mutate({ id: "o1", config: other.probeConfig() });
        const vm = await client.vm.start.mutate({ id: "o1" });
        other.track(vm.pid);
        assert.deepEqual(await client.vm.qmp.mutate({ id: "o1", execute: "query-status" }), {
          return: { running: true, singlestep: false, status: "running" },
        });
        assert.deepEqual(childPids(vm.pid ?? 0), [], "served by that run directory's host");
      } finally {
        await other.cleanup();
      }
    }),
  );

  it("a client flooding one VM's QMP does not starve the others", TEST, () =>
    withTranscript(async () => {
      const [flooded, ...others] = ids;
      assert.ok(flooded !== undefined);
      const clients = await Promise.all(others.map((id) => QmpClient.connect(qmpSocket(id))));
      const sample = async (rounds: number): Promise<number[]> => {
        const latencies: number[] = [];
        for (let round = 0; round < rounds; round++) {
          for (const client of clients) {
            const t = performance.now();
            await client.execute("query-status");
            latencies.push(performance.now() - t);
          }
        }
        return latencies;
      };
      try {
        await sample(2); // warm up
        const idle = await sample(10);

        // Pipelined query-status as fast as the socket takes them, from a
        // process of its own (so this one only measures); replies are read
        // and counted, so the flood is never slowed by back-pressure.
        const flooder = spawn(process.execPath, ["-e", FLOODER, qmpSocket(flooded)], {
          stdio: ["ignore", "pipe", "inherit"],
        });
        let report = "";
        flooder.stdout.setEncoding("utf8").on("data", (text: string) => (report += text));
        const flooderExit = new Promise((resolve) => flooder.once("exit", resolve));
        await waitUntil(() => report.includes("flooding"), "the flood to start", 5000);
        await sleep(500);
        const loaded = await sample(10);
        flooder.kill("SIGTERM");
        await flooderExit;
        const replies = Number(/replies (\d+)/.exec(report)?.[1] ?? 0);

        const idleP50 = percentile(idle, 50);
        const loadedP50 = percentile(loaded, 50);
        const loadedP95 = percentile(loaded, 95);
        console.log(
          `query-status on ${others.length} other VMs (ms): idle p50 ${idleP50.toFixed(2)} p95 ${percentile(idle, 95).toFixed(2)}; ` +
            `with one VM flooded p50 ${loadedP50.toFixed(2)} p95 ${loadedP95.toFixed(2)} max ${Math.max(...loaded).toFixed(2)}; ` +
            `the flooded VM answered ${replies} commands meanwhile`,
        );
        assert.ok(replies > 1000, "the flooded VM is served too");
        // Generous: a starved host would answer in hundreds of ms or not at all.
        assert.ok(
          loadedP50 < Math.max(10 * idleP50, 5),
          `p50 ${loadedP50.toFixed(2)} ms against ${idleP50.toFixed(2)} ms idle`,
        );
        assert.ok(loadedP95 < 100, `p95 ${loadedP95.toFixed(2)} ms with one VM flooded`);
      } finally {
        for (const client of clients) client.close();
      }
    }),
  );
});
