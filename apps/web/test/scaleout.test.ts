// Several portals as one: two portal instances on one PostgreSQL database
// (a throwaway server from Debian's packages) over two real virgads. A
// session made on one works on the other and its actions are audited once;
// both show the same VM state; one virgad's events are stored once however
// many portals follow it, and none is lost when a portal is killed in the
// middle of a burst; a portal started later needs nothing done by hand; an
// unplaced VM goes to the host with the most free memory; a host that stops
// answering is shown unreachable and placement passes it by; with every
// portal killed, the next one to start stores what virgad sent meanwhile.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTRPCClient, createWSClient, httpLink, wsLink } from "@trpc/client";
import type { AppRouter as VirgadRouter, VmEvent } from "@virga/host/src/daemon/router";
import { startPostgres, type PostgresServer } from "@virga/prisma/postgres-server";
import WebSocket from "ws";
import {
  ADMIN_PASSWORD,
  FailureWatch,
  PortalApi,
  signIn,
  startPortal,
  startVirgad,
  waitFor,
  type Portal,
  type Virgad,
} from "./harness";

let server: PostgresServer | undefined;
let databaseUrl: string;
const virgads: Virgad[] = [];
const portals: Portal[] = [];
const watch = new FailureWatch();
const track = (fn: () => Promise<void>) => watch.track(fn);

before(async () => {
  server = await startPostgres();
  databaseUrl = await server.createDatabase("virga");
  virgads.push(...(await Promise.all([startVirgad(), startVirgad()])));
  // One after the other: the first migrates the database (and builds the
  // pages if needed), the second finds both done, as a later one would.
  portals.push(await startPortal(databaseUrl));
  portals.push(await startPortal(databaseUrl));
});

after(async () => {
  if (watch.failed) {
    for (const [index, portal] of portals.entries())
      console.log(`portal ${index + 1} output:\n${portal.output()}`);
    for (const [index, virgad] of virgads.entries())
      console.log(`virgad ${index + 1} output:\n${virgad.output()}`);
    if (server !== undefined) console.log(`postgresql log:\n${server.log()}`);
  }
  await Promise.all(portals.map((portal) => portal.stop()));
  await Promise.all(virgads.map((virgad) => virgad.stop()));
  await server?.stop();
});

/** A browser session made on one portal, presented to another. */
function sameSession(session: PortalApi, url: string): PortalApi {
  return new PortalApi(url, null, session.session);
}

function virgadClient(virgad: Virgad) {
  return createTRPCClient<VirgadRouter>({
    links: [
      httpLink({ url: `${virgad.url}/trpc`, headers: { authorization: `Bearer ${virgad.token}` } }),
    ],
  });
}

/** Collects one VM's events as virgad numbers them, from the oldest it keeps. */
function collectEvents(virgad: Virgad, vmId: string) {
  const url = new URL(`${virgad.url.replace(/^http/, "ws")}/trpc`);
  url.searchParams.set("token", virgad.token);
  const socket = createWSClient({
    url: url.toString(),
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
  });
  const client = createTRPCClient<VirgadRouter>({ links: [wsLink({ client: socket })] });
  const seqs: number[] = [];
  const subscription = client.vm.events.subscribe(
    { id: vmId, lastEventId: "0" },
    { onData: (envelope) => seqs.push((envelope.data as VmEvent).seq) },
  );
  return {
    seqs,
    close: () => {
      subscription.unsubscribe();
      void socket.close();
    },
  };
}

describe("two portals on one PostgreSQL database", () => {
  let first: PortalApi;
  let second: PortalApi;
  const hostIds: string[] = [];
  let probeDefinitionId = "";
  let vmId = "";

  before(async () => {
    const [one, two] = portals;
    assert.ok(one && two);
    first = await signIn(one.url, "admin", ADMIN_PASSWORD);
    second = sameSession(first, two.url);
  });

  it(
    "a session made on one portal works on the other, and each action is audited once",
    track(async () => {
      const me = await second.trpc.auth.me.query();
      assert.equal(me?.username, "admin");
      for (const [index, virgad] of virgads.entries()) {
        const host = await second.trpc.hosts.add.mutate({
          name: `host-${index + 1}`,
          url: virgad.url,
          token: virgad.token,
        });
        hostIds.push(host.id);
      }
      const fromFirst = await first.trpc.hosts.list.query();
      assert.deepEqual(
        fromFirst.map((host) => host.name),
        ["host-1", "host-2"],
      );
      const audited = await first.trpc.audit.list.query({ action: "hosts.add" });
      assert.deepEqual(audited.map((entry) => entry.target).sort(), ["host-1", "host-2"]);
      assert.ok(audited.every((entry) => entry.actor === "admin" && entry.result === "ok"));
      const definitions = await first.trpc.definitions.list.query();
      const probe = definitions.find((definition) => definition.name === "probe-guest");
      assert.ok(probe, "the probe guest is offered (seeded once by two portals)");
      assert.equal(definitions.filter((d) => d.name === "probe-guest").length, 1);
      probeDefinitionId = probe.id;
    }),
  );

  it(
    "a VM made on one portal and paused on the other shows the same state on both",
    track(async () => {
      const hostId = hostIds[0] ?? "";
      vmId = (await first.trpc.vms.create.mutate({ definitionId: probeDefinitionId, hostId })).id;
      await second.trpc.vms.pause.mutate({ id: vmId });
      for (const api of [first, second]) {
        await waitFor(`${api.url} to list the VM paused`, async () => {
          const vm = (await api.trpc.vms.list.query()).find((row) => row.id === vmId);
          return vm?.state === "paused";
        });
        assert.equal((await api.trpc.vms.get.query({ id: vmId })).state, "paused");
      }
      await first.trpc.vms.resume.mutate({ id: vmId });
      const audited = await second.trpc.audit.list.query({ target: vmId });
      assert.deepEqual(audited.map((entry) => entry.action).sort(), [
        "vms.create",
        "vms.pause",
        "vms.resume",
      ]);
    }),
  );

  it(
    "one virgad's events are stored once, and none is lost when a portal is killed mid-stream",
    track(async () => {
      const [victim, survivor] = portals;
      const virgad = virgads[0];
      assert.ok(victim && survivor && virgad);
      const events = collectEvents(virgad, vmId);
      const host = virgadClient(virgad);
      const CYCLES = 30;
      try {
        for (let cycle = 0; cycle < CYCLES; cycle++) {
          if (cycle === CYCLES / 3) victim.signal("SIGKILL");
          await host.vm.pause.mutate({ id: vmId });
          await host.vm.resume.mutate({ id: vmId });
        }
        const stored = async (api: PortalApi) =>
          (await api.trpc.vms.events.query({ id: vmId, limit: 1000 })).map((event) => event.seq);
        let seqs: number[] = [];
        const missing = () => events.seqs.filter((seq) => !seqs.includes(seq));
        await waitFor(
          "the surviving portal to store every event virgad sent",
          async () => {
            seqs = await stored(second);
            return events.seqs.length >= CYCLES * 2 && missing().length === 0;
          },
          60_000,
        ).catch((error: unknown) => {
          throw new Error(
            `${String(error)}: virgad sent ${events.seqs.length} events, missing: ${missing().join(", ")}`,
          );
        });
        assert.equal(new Set(seqs).size, seqs.length, "an event was stored twice");
        assert.deepEqual(
          [...seqs].sort((a, b) => a - b),
          [...events.seqs].sort((a, b) => a - b),
          "the portal stored events virgad never sent for this VM",
        );

        // A portal started now needs nothing done by hand: same sessions, same events.
        await victim.stop();
        const restarted = await startPortal(databaseUrl);
        portals[0] = restarted;
        first = sameSession(first, restarted.url);
        const again = first;
        assert.equal((await again.trpc.auth.me.query())?.username, "admin");
        assert.deepEqual(await stored(again), seqs);
        assert.equal((await again.trpc.vms.get.query({ id: vmId })).state, "running");
      } finally {
        events.close();
      }
    }),
  );

  it(
    "an unplaced VM goes to the host with the most free memory",
    track(async () => {
      const free = async () =>
        new Map(
          (await second.trpc.hosts.list.query()).map((host) => [
            host.id,
            host.capacity?.freeBytes ?? -1,
          ]),
        );
      const roomier = (sizes: Map<string, number>) =>
        [...sizes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
      const [one = "", two = ""] = hostIds;

      // host-1 runs the VM of the tests above; host-2 nothing.
      let sizes = await free();
      assert.ok((sizes.get(two) ?? 0) > (sizes.get(one) ?? 0), JSON.stringify([...sizes]));
      const placed = await second.trpc.vms.create.mutate({ definitionId: probeDefinitionId });
      assert.equal(placed.hostId, two);

      // One more on host-2 makes host-1 the roomier one.
      await first.trpc.vms.create.mutate({ definitionId: probeDefinitionId, hostId: two });
      sizes = await free();
      assert.equal(roomier(sizes), one, JSON.stringify([...sizes]));
      const next = await first.trpc.vms.create.mutate({ definitionId: probeDefinitionId });
      assert.equal(next.hostId, one);
      assert.equal((await first.trpc.vms.get.query({ id: next.id })).hostName, "host-1");
    }),
  );

  it(
    "a host that stops answering is shown unreachable by both portals, and placement passes it by",
    track(async () => {
      const [one = "", two = ""] = hostIds;
      await virgads[1]?.stop();
      for (const api of [first, second]) {
        const down = (await api.trpc.hosts.list.query()).find((host) => host.id === two);
        assert.ok(down, `${api.url} lists host-2`);
        assert.equal(down.capacity, null);
        assert.match(down.error, /host-2/, `${api.url}: ${JSON.stringify(down)}`);
        const up = (await api.trpc.hosts.list.query()).find((host) => host.id === one);
        assert.equal(up?.error, null);
        assert.ok(up.capacity.cpus > 0, JSON.stringify(up));
      }
      const placed = await second.trpc.vms.create.mutate({ definitionId: probeDefinitionId });
      assert.equal(placed.hostId, one);
    }),
  );

  it(
    "with every portal killed, what virgad sent meanwhile is stored by the next one to start",
    track(async () => {
      const virgad = virgads[0];
      assert.ok(virgad);
      for (const portal of portals) portal.signal("SIGKILL");
      await Promise.all(portals.map((portal) => portal.stop()));
      const events = collectEvents(virgad, vmId);
      try {
        const host = virgadClient(virgad);
        for (let cycle = 0; cycle < 10; cycle++) {
          await host.vm.pause.mutate({ id: vmId });
          await host.vm.resume.mutate({ id: vmId });
        }
        const next = await startPortal(databaseUrl);
        portals.splice(0, portals.length, next);
        const api = sameSession(first, next.url);
        let seqs: number[] = [];
        const missing = () => events.seqs.filter((seq) => !seqs.includes(seq));
        await waitFor(
          "the restarted portal to store what virgad sent while no portal ran",
          async () => {
            seqs = (await api.trpc.vms.events.query({ id: vmId, limit: 1000 })).map((e) => e.seq);
            return events.seqs.length >= 20 && missing().length === 0;
          },
          60_000,
        ).catch((error: unknown) => {
          throw new Error(`${String(error)}: missing: ${missing().join(", ")}`);
        });
        assert.equal(new Set(seqs).size, seqs.length, "an event was stored twice");
      } finally {
        events.close();
      }
    }),
  );
});
