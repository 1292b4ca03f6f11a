// Live migration through the portal's API, against a real portal, two real
// virgads on this machine (the local host and a second one with its own
// run directory and port) and a probe-guest VM: roles, refusals naming the
// field, a migration over plain HTTP whose VM then runs on the other host
// under the same portal id with its history row filled in, a cancel that
// leaves the VM running where it was, the audit log and OpenAPI.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  assertOperatorOnly,
  errorOf,
  type ExtraHost,
  FailureWatch,
  PortalApi,
  type Stack,
  startExtraHost,
  startStack,
  statusOf,
  tokenApi,
  waitFor,
} from "./harness";

const MIB = 1024 * 1024;

let stack: Stack;
let second: ExtraHost | undefined;
let operator: PortalApi;
let viewer: PortalApi;
let localHostId: string;
let secondHostId: string;
let vmId: string;
const watch = new FailureWatch();

before(async () => {
  stack = await startStack();
  try {
    second = await startExtraHost(stack, "host-b");
    const admin = await tokenApi(stack, "admin", "mig-admin");
    secondHostId = (
      await admin.trpc.hosts.add.mutate({ name: "second", url: second.url, token: second.token })
    ).id;
    operator = await tokenApi(stack, "operator", "mig-operator");
    viewer = await tokenApi(stack, "viewer", "mig-viewer");
    const local = (await operator.trpc.hosts.list.query()).find((h) => h.isLocal);
    assert.ok(local, "the local host is registered");
    localHostId = local.id;
    const probe = (await operator.trpc.definitions.list.query()).find(
      (d) => d.name === "probe-guest",
    );
    assert.ok(probe, "the probe guest is offered");
    vmId = (
      await operator.trpc.vms.create.mutate({
        definitionId: probe.id,
        hostId: localHostId,
        name: "traveller",
      })
    ).id;
    await waitFor("the VM to run", async () => {
      return (await operator.trpc.vms.get.query({ id: vmId })).state === "running";
    });
  } catch (error) {
    watch.fail();
    throw error;
  }
});

after(async () => {
  if (watch.failed && second !== undefined) console.log(`host-b output:\n${second.output()}`);
  await second?.stop();
  await watch.stop(stack);
});

const track = (fn: () => Promise<void>) => watch.track(fn);

async function settled(id: string) {
  let row = await operator.trpc.migrations.get.query({ id });
  await waitFor(
    `migration ${id} to end`,
    async () => {
      row = await operator.trpc.migrations.get.query({ id });
      return !["pending", "active"].includes(row.status);
    },
    60_000,
  );
  return row;
}

describe("migrations", () => {
  it(
    "a viewer lists migrations but cannot start or cancel one (403)",
    track(async () => {
      assert.deepEqual(await viewer.trpc.migrations.list.query(), []);
      const calls = [
        () => viewer.trpc.migrations.start.mutate({ vmId, destinationHostId: secondHostId }),
        () => viewer.trpc.migrations.cancel.mutate({ id: "x" }),
      ];
      await assertOperatorOnly(calls);
    }),
  );

  it(
    "refuses an unknown VM or host and bad figures, naming the field; no row is left",
    track(async () => {
      const cases: [unknown, number, RegExp][] = [
        [{ vmId: "nope", destinationHostId: secondHostId }, 404, /no VM with id 'nope'/],
        [
          { vmId, destinationHostId: "nohost" },
          404,
          /^destinationHostId: no host with id 'nohost'/,
        ],
        [
          { vmId, destinationHostId: secondHostId, downtimeLimitMs: 0 },
          400,
          /^downtimeLimitMs: must be 1\.\.2000000 ms/,
        ],
        [
          { vmId, destinationHostId: secondHostId, maxBandwidth: -1 },
          400,
          /^maxBandwidth: must be ≥ 0 bytes\/s/,
        ],
      ];
      for (const [input, status, message] of cases) {
        const reply = await operator.mutate("migrations.start", input);
        assert.equal(reply.status, status, JSON.stringify(reply.body));
        assert.match(errorOf(reply).message, message);
      }
      const stopped = await operator.trpc.vms.create.mutate({
        definitionId: (await operator.trpc.definitions.list.query()).find(
          (d) => d.name === "probe-guest",
        )?.id as string,
        hostId: localHostId,
        name: "stopped",
        start: false,
      });
      const reply = await operator.mutate("migrations.start", {
        vmId: stopped.id,
        destinationHostId: secondHostId,
      });
      assert.equal(reply.status, 412, JSON.stringify(reply.body));
      assert.match(errorOf(reply).message, /cannot migrate VM '.*': it is created/);
      await operator.trpc.vms.delete.mutate({ id: stopped.id });
      assert.deepEqual(await operator.trpc.migrations.list.query(), []);
    }),
  );

  it(
    "migrates a running VM to the other host over plain HTTP; it runs there under the same id",
    track(async () => {
      const reply = await operator.mutate("migrations.start", {
        vmId,
        destinationHostId: secondHostId,
        downtimeLimitMs: 200,
      });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const started = (reply.body as { result: { data: { id: string; status: string } } }).result
        .data;
      assert.ok(["active", "completed"].includes(started.status), started.status);
      const done = await settled(started.id);
      assert.equal(done.status, "completed", JSON.stringify(done));
      assert.equal(done.error, null);
      assert.equal(done.sourceHostId, localHostId);
      assert.equal(done.destinationHostId, secondHostId);
      assert.equal(done.vmId, vmId);
      assert.equal(done.totalBytes, 128 * MIB);
      assert.ok((done.transferredBytes ?? 0) > 0);
      assert.ok(typeof done.downtimeMs === "number" && done.downtimeMs < 1000);
      assert.ok(done.finishedAt !== null && (done.durationMs ?? -1) >= 0);

      await waitFor("the VM row to belong to the second host", async () => {
        const vm = await operator.trpc.vms.get.query({ id: vmId });
        return vm.hostId === secondHostId && vm.state === "running" && vm.hostError === null;
      });
      // The gateway reaches it on its new host.
      const status = await operator.qmp(vmId, { execute: "query-status" });
      assert.deepEqual((status.body as { return: { status: string } }).return.status, "running");
      const rows = (await operator.trpc.vms.list.query()).filter((v) => v.name === "traveller");
      assert.deepEqual(
        rows.map((v) => [v.id, v.hostId]),
        [[vmId, secondHostId]],
      );
      const history = await viewer.trpc.migrations.list.query({ vmId });
      assert.deepEqual(
        history.map((m) => [m.id, m.status, m.sourceHostName, m.destinationHostName]),
        [[started.id, "completed", "local", "second"]],
      );
    }),
  );

  it(
    "cancels a migration mid-way: the VM runs on where it was",
    track(async () => {
      // Back towards the local host, slowly: 48 MiB written by the guest at 2 MiB/s.
      await operator.trpc.vms.consoleInput.mutate({ id: vmId, data: "mem dirty 48 20\n" });
      const started = await operator.trpc.migrations.start.mutate({
        vmId,
        destinationHostId: localHostId,
        maxBandwidth: 2 * MIB,
      });
      await waitFor("bytes to flow", async () => {
        const row = await operator.trpc.migrations.get.query({ id: started.id });
        return (row.live?.stats?.transferredBytes ?? 0) > 0;
      });
      const cancelled = await operator.trpc.migrations.cancel.mutate({ id: started.id });
      assert.equal(cancelled.status, "cancelled", JSON.stringify(cancelled));
      assert.ok(cancelled.error !== null);
      const vm = await operator.trpc.vms.get.query({ id: vmId });
      assert.equal(vm.hostId, secondHostId);
      assert.equal(vm.state, "running");
      const again = await statusOf(operator.trpc.migrations.cancel.mutate({ id: started.id }));
      assert.equal(again.status, 412);
      assert.match(again.message, /is cancelled; only a running one can be cancelled/);
      // Nothing of it stayed at the local host.
      await waitFor("the local host to drop the incoming VM", async () => {
        const host = await operator.trpc.hosts.get.query({ id: localHostId });
        return host.info !== null && !host.info.vms.some((v) => v.id === vm.hostVmId);
      });
    }),
  );
});

describe("migrations within a host", () => {
  it(
    "moves a running VM to a new process on its own host: same row and host, a new pid",
    track(async () => {
      const before = await operator.trpc.vms.get.query({ id: vmId });
      assert.equal(before.state, "running");
      const started = await operator.trpc.migrations.start.mutate({
        vmId,
        destinationHostId: before.hostId,
        // The VM keeps the last migration's 2 MiB/s limit unless told otherwise, as QEMU does.
        maxBandwidth: 0,
      });
      assert.equal(started.transport, "unix");
      const done = await settled(started.id);
      assert.equal(done.status, "completed", JSON.stringify(done));
      assert.equal(done.sourceHostId, before.hostId);
      assert.equal(done.destinationHostId, before.hostId);
      await waitFor("the VM row to show the new process", async () => {
        const vm = await operator.trpc.vms.get.query({ id: vmId });
        return vm.state === "running" && vm.pid !== null && vm.pid !== before.pid;
      });
      const vm = await operator.trpc.vms.get.query({ id: vmId });
      assert.equal(vm.hostId, before.hostId);
      assert.equal(vm.name, "traveller");
      const status = await operator.qmp(vmId, { execute: "query-status" });
      assert.deepEqual((status.body as { return: { status: string } }).return.status, "running");
      // No trace of the passing process's VM in the portal.
      const rows = (await operator.trpc.vms.list.query()).filter((v) => v.hostId === vm.hostId);
      assert.ok(
        !rows.some((v) => v.name !== "traveller" && /^mig-/.test(v.id)),
        JSON.stringify(rows),
      );
    }),
  );
});

describe("migrations: audit and OpenAPI", () => {
  it(
    "audits starting and cancelling, with their results",
    track(async () => {
      const admin = await tokenApi(stack, "admin", "mig-auditor");
      const entries = await admin.trpc.audit.list.query({ limit: 500 });
      const has = (action: string, result: string) =>
        entries.some((e) => e.action === action && e.result === result && e.target === vmId);
      assert.ok(has("migrations.start", "ok"));
      assert.ok(has("migrations.start", "error"), "the refused ones");
      assert.ok(has("migrations.cancel", "ok"));
    }),
  );

  it(
    "lists the migration procedures",
    track(async () => {
      const response = await fetch(`${stack.url}/api/v1/openapi.json`, {
        headers: { authorization: `Bearer ${operator.token ?? ""}` },
      });
      const doc = (await response.json()) as { paths: Record<string, Record<string, unknown>> };
      for (const path of ["migrations.list", "migrations.get"]) {
        assert.ok("get" in (doc.paths[`/api/trpc/${path}`] ?? {}), path);
      }
      for (const path of ["migrations.start", "migrations.cancel"]) {
        assert.ok("post" in (doc.paths[`/api/trpc/${path}`] ?? {}), path);
      }
      assert.match(
        JSON.stringify(doc.paths["/api/trpc/migrations.start"]),
        /"downtimeLimitMs":\{"type":"integer","minimum":1,"maximum":2000000\}/,
      );
    }),
  );
});
