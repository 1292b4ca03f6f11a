// The scale-out figures (docs/scale-out.md): how many virgad events per
// second the portal stores with one and with two instances on one database,
// and the API's latency under 20 concurrent clients, on SQLite and on
// PostgreSQL (a throwaway server from Debian's packages with its default
// durability: fsync and synchronous commit on).
//
// Events: the portals are stopped (SIGSTOP) while virgad produces a backlog
// (pause/resume of a few probe-guest VMs), then continued together; the rate
// is the backlog over the time until the database holds every event of it.
// Latency: 20 clients, each with its own API token, call vms.list (an
// authenticated read: token lookup plus the VM list) in a loop for a while.
// Beside each figure, the CPU time the portals and the PostgreSQL server
// spent on it per event or per request: on a machine that other work keeps
// busy, wall times grow with the load, CPU time much less. The database's
// share includes the bench's own polling (a count of the events every 10 ms
// while a backlog drains).
//
//   npm run bench -w apps/web [-- --rounds 3 --backlog 800 --seconds 10 --vms 4]
//
// Prints a table and writes bench-results/scaleout.json.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createTRPCClient, httpLink } from "@trpc/client";
import type { AppRouter as VirgadRouter } from "@virga/host/src/daemon/router";
import { createPrismaClient } from "@virga/prisma";
import { startPostgres } from "@virga/prisma/postgres-server";
import {
  ADMIN_PASSWORD,
  childrenOf,
  PortalApi,
  REPO_ROOT,
  signIn,
  startPortal,
  startVirgad,
  waitFor,
  type Portal,
  type Virgad,
} from "../test/harness";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    backlog: { type: "string", default: "800" },
    seconds: { type: "string", default: "10" },
    vms: { type: "string", default: "4" },
    clients: { type: "string", default: "20" },
  },
});
const ROUNDS = Number(values.rounds);
const BACKLOG = Number(values.backlog);
const SECONDS = Number(values.seconds);
const VMS = Number(values.vms);
const CLIENTS = Number(values.clients);

type Database = "sqlite" | "postgresql";

interface Result {
  database: Database;
  eventsPerSecond: {
    portals: number;
    rounds: number[];
    median: number;
    /** CPU time per event stored: the portals, and the database server. */
    portalCpuMsPerEvent: number;
    databaseCpuMsPerEvent: number;
  }[];
  latency: {
    portals: number;
    requests: number;
    p50Ms: number;
    p99Ms: number;
    portalCpuMsPerRequest: number;
    databaseCpuMsPerRequest: number;
  }[];
}

const TICK_MS = 1000 / 100; // USER_HZ

/**
 * CPU time (user + system, in ms) of each process and of its children that
 * exited, plus its live children: PostgreSQL's backends come and go with
 * the pools' connections, and the postmaster collects the time of those
 * that exit.
 */
function treeCpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of [...pids, ...pids.flatMap(childrenOf)]) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime, stime, cutime, cstime
      for (const index of [11, 12, 13, 14]) ticks += Number(fields[index]);
    } catch {
      // exited in between: its parent's cutime/cstime has it
    }
  }
  return ticks * TICK_MS;
}

/** CPU time of what `run` made the portals and the database server do. */
async function measured<T>(
  portals: readonly Portal[],
  databasePid: number | null,
  run: () => Promise<T>,
): Promise<{ value: T; portalMs: number; databaseMs: number }> {
  const portalPids = portals.flatMap((portal) => portal.serverPids());
  const databasePids = databasePid === null ? [] : [databasePid];
  const [portalBefore, databaseBefore] = [treeCpuMs(portalPids), treeCpuMs(databasePids)];
  const value = await run();
  return {
    value,
    portalMs: treeCpuMs(portalPids) - portalBefore,
    databaseMs: treeCpuMs(databasePids) - databaseBefore,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Pause/resume cycles on every VM at once until `events` events were made (4 per cycle). */
async function makeBacklog(virgad: Virgad, vmIds: readonly string[], events: number) {
  const client = createTRPCClient<VirgadRouter>({
    links: [
      httpLink({ url: `${virgad.url}/trpc`, headers: { authorization: `Bearer ${virgad.token}` } }),
    ],
  });
  const cycles = Math.ceil(events / 4 / vmIds.length);
  await Promise.all(
    vmIds.map(async (id) => {
      for (let i = 0; i < cycles; i++) {
        await client.vm.pause.mutate({ id });
        await client.vm.resume.mutate({ id });
      }
    }),
  );
  return cycles * 4 * vmIds.length;
}

/** Events stored per second by `portals` draining one backlog together (and how many). */
async function drainRate(
  portals: readonly Portal[],
  virgad: Virgad,
  vmIds: readonly string[],
  count: () => Promise<number>,
): Promise<{ made: number; rate: number }> {
  // Let the portals catch up with anything earlier, then freeze them.
  let before = await count();
  for (;;) {
    await sleep(1000);
    const now = await count();
    if (now === before) break;
    before = now;
  }
  for (const portal of portals) portal.signal("SIGSTOP");
  let made: number;
  try {
    made = await makeBacklog(virgad, vmIds, BACKLOG);
  } finally {
    for (const portal of portals) portal.signal("SIGCONT");
  }
  const started = performance.now();
  const target = before + made;
  for (;;) {
    const stored = await count();
    if (stored >= target) break;
    if (performance.now() - started > 120_000)
      throw new Error(`only ${stored - before} of ${made} events stored in 120 s`);
    await sleep(10);
  }
  return { made, rate: made / ((performance.now() - started) / 1000) };
}

/** p50/p99 of vms.list with CLIENTS concurrent clients spread over the portals. */
async function latency(clients: readonly PortalApi[]) {
  const times: number[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < deadline) {
        const start = performance.now();
        const reply = await client.query("vms.list");
        if (reply.status !== 200) throw new Error(`vms.list: HTTP ${reply.status}`);
        times.push(performance.now() - start);
      }
    }),
  );
  times.sort((a, b) => a - b);
  return { requests: times.length, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

async function scenario(database: Database): Promise<Result> {
  const scratch = mkdtempSync(path.join(tmpdir(), "virga-bench-"));
  const server = database === "postgresql" ? await startPostgres({ durable: true }) : null;
  const url =
    server === null
      ? `file:${path.join(scratch, "portal.db")}`
      : await server.createDatabase("virga");
  const db = createPrismaClient(url);
  const portals: Portal[] = [];
  let virgad: Virgad | null = null;
  try {
    virgad = await startVirgad();
    portals.push(await startPortal(url));
    const admin = await signIn(portals[0]?.url ?? "", "admin", ADMIN_PASSWORD);
    const host = await admin.trpc.hosts.add.mutate({
      name: "bench",
      url: virgad.url,
      token: virgad.token,
    });
    const probe = (await admin.trpc.definitions.list.query()).find(
      (definition) => definition.name === "probe-guest",
    );
    if (probe === undefined) throw new Error("no probe-guest definition (is the probe built?)");
    const vmIds: string[] = [];
    for (let i = 0; i < VMS; i++) {
      const vm = await admin.trpc.vms.create.mutate({
        definitionId: probe.id,
        hostId: host.id,
        name: `bench-${i}`,
      });
      vmIds.push(vm.id);
    }
    await waitFor("the bench VMs' rows", async () => (await db.vm.count()) === VMS, 60_000);
    const count = () => db.event.count();
    const tokens = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) =>
        admin.trpc.tokens.create.mutate({ name: `bench-${i}`, role: "viewer" }),
      ),
    );
    const result: Result = { database, eventsPerSecond: [], latency: [] };
    const databasePid = server?.pid ?? null;
    for (const instances of [1, 2]) {
      if (instances === 2) portals.push(await startPortal(url));
      const source = virgad; // non-null here; the closure below cannot see that
      const drained = await measured(portals, databasePid, async () => {
        const runs = [];
        for (let round = 0; round < ROUNDS; round++)
          runs.push(await drainRate(portals, source, vmIds, count));
        return runs;
      });
      const events = drained.value.reduce((sum, run) => sum + run.made, 0);
      const rounds = drained.value.map((run) => run.rate);
      result.eventsPerSecond.push({
        portals: instances,
        rounds,
        median: median(rounds),
        portalCpuMsPerEvent: drained.portalMs / events,
        databaseCpuMsPerEvent: drained.databaseMs / events,
      });
      const clients = tokens.map(
        (token, i) => new PortalApi(portals[i % portals.length]?.url ?? "", token.token),
      );
      const api = await measured(portals, databasePid, () => latency(clients));
      result.latency.push({
        portals: instances,
        ...api.value,
        portalCpuMsPerRequest: api.portalMs / api.value.requests,
        databaseCpuMsPerRequest: api.databaseMs / api.value.requests,
      });
      console.log(JSON.stringify(result));
    }
    return result;
  } finally {
    await db.$disconnect();
    await Promise.all(portals.map((portal) => portal.stop()));
    await virgad?.stop();
    await server?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

const results: Result[] = [];
for (const database of ["sqlite", "postgresql"] as const) results.push(await scenario(database));

console.log(
  `\nportal scale-out, ${ROUNDS} rounds of a ${BACKLOG}-event backlog, ${CLIENTS} API clients for ${SECONDS} s`,
);
console.log(
  "database    portals  events/s (median of rounds)       CPU ms/event portal+db   vms.list p50 / p99 ms   CPU ms/request portal+db",
);
for (const result of results) {
  for (const [index, events] of result.eventsPerSecond.entries()) {
    const api = result.latency[index];
    const rounds = events.rounds.map((rate) => rate.toFixed(0)).join(", ");
    console.log(
      [
        result.database.padEnd(11),
        String(events.portals).padEnd(8),
        `${events.median.toFixed(0)} (${rounds})`.padEnd(34),
        `${events.portalCpuMsPerEvent.toFixed(2)} + ${events.databaseCpuMsPerEvent.toFixed(2)}`.padEnd(
          24,
        ),
        `${api?.p50Ms.toFixed(1)} / ${api?.p99Ms.toFixed(1)} (${api?.requests})`.padEnd(23),
        `${api?.portalCpuMsPerRequest.toFixed(2)} + ${api?.databaseCpuMsPerRequest.toFixed(2)}`,
      ].join(" "),
    );
  }
}
const out = path.join(REPO_ROOT, "bench-results");
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, "scaleout.json"), JSON.stringify(results, null, 2) + "\n");
console.log(`\nwrote ${path.join(out, "scaleout.json")}`);
