// Snapshot templates and clones through the portal's API, against a real
// portal, a real virgad and probe-guest VMs: roles (viewers read, operators
// save, clone and delete), field-named errors from the portal and virgad,
// clones that show up as VMs of their own with a link to their template,
// the audit log and the OpenAPI document.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  assertOperatorOnly,
  errorOf,
  FailureWatch,
  PortalApi,
  type Stack,
  startStack,
  tokenApi,
} from "./harness";

const MIB = 1024 * 1024;

let stack: Stack;
let operator: PortalApi;
let viewer: PortalApi;
let vmId: string;
let templateId: string;
let cloneIds: string[] = [];
const watch = new FailureWatch();

before(async () => {
  stack = await startStack();
  try {
    operator = await tokenApi(stack, "operator", "tpl-operator");
    viewer = await tokenApi(stack, "viewer", "tpl-viewer");
    const [host] = await operator.trpc.hosts.list.query();
    assert.ok(host, "the local host is registered");
    const probe = (await operator.trpc.definitions.list.query()).find(
      (d) => d.name === "probe-guest",
    );
    assert.ok(probe, "the probe guest is offered");
    vmId = (
      await operator.trpc.vms.create.mutate({
        definitionId: probe.id,
        hostId: host.id,
        name: "src",
      })
    ).id;
  } catch (error) {
    watch.fail();
    throw error;
  }
});

after(async () => {
  await watch.stop(stack);
});

const track = (fn: () => Promise<void>) => watch.track(fn);

describe("templates", () => {
  it(
    "a viewer lists templates but cannot save, clone or delete one (403)",
    track(async () => {
      assert.deepEqual(await viewer.trpc.templates.list.query(), []);
      const calls = [
        () => viewer.trpc.templates.create.mutate({ vmId, name: "nope" }),
        () => viewer.trpc.templates.clone.mutate({ id: "x", count: 1 }),
        () => viewer.trpc.templates.delete.mutate({ id: "x" }),
      ];
      await assertOperatorOnly(calls);
    }),
  );

  it(
    "an operator saves a running VM as a template over plain HTTP; the VM runs on",
    track(async () => {
      const bad = await operator.mutate("templates.create", { vmId, name: "Bad Name" });
      assert.equal(bad.status, 400);
      assert.match(errorOf(bad).message, /^name: 1-48 lowercase letters/);
      const reply = await operator.mutate("templates.create", { vmId, name: "web" });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const template = (reply.body as { result: { data: { id: string } } }).result.data;
      templateId = template.id;
      const listed = await viewer.trpc.templates.list.query();
      assert.equal(listed.length, 1);
      const [row] = listed;
      assert.ok(row);
      assert.equal(row.name, "web");
      assert.equal(row.sourceVmId, vmId);
      assert.equal(row.sourceVmName, "src");
      assert.equal(row.memoryBytes, 128 * MIB);
      assert.equal(row.clonesMade, 0);
      assert.ok(row.sizeBytes > 0 && row.sizeBytes < 128 * MIB, `sparse: ${row.sizeBytes}`);
      assert.match(row.path, /\/host\/templates\/web$/);
      assert.equal((await viewer.trpc.vms.get.query({ id: vmId })).state, "running");

      const again = await operator.mutate("templates.create", { vmId, name: "web" });
      assert.equal(again.status, 409);
      assert.equal(errorOf(again).message, "name: a template named 'web' exists already");
      const noVm = await operator.mutate("templates.create", { vmId: "no-such-vm", name: "x" });
      assert.equal(noVm.status, 404);
    }),
  );

  it(
    "clones it twice; each clone is a running VM of its own, linked to the template",
    track(async () => {
      const report = await operator.trpc.templates.clone.mutate({ id: templateId, count: 2 });
      assert.equal(report.started, 2, JSON.stringify(report));
      assert.deepEqual(
        report.clones.map((c) => [c.hostVmId, c.state, c.error]),
        [
          ["web-1", "running", null],
          ["web-2", "running", null],
        ],
      );
      cloneIds = report.clones.map((c) => c.id ?? "");
      for (const id of cloneIds) {
        const vm = await viewer.trpc.vms.get.query({ id });
        assert.equal(vm.state, "running");
        assert.equal(vm.clonedFrom, "web");
        assert.equal(vm.config.incoming, undefined, "restored once; later starts boot");
        const status = await viewer.qmp(id, { execute: "query-status" });
        assert.deepEqual(status.body, {
          return: { running: true, singlestep: false, status: "running" },
        });
      }
      const progress = await viewer.trpc.templates.clones.query({
        id: templateId,
        since: new Date(Date.now() - 60_000).toISOString(),
      });
      assert.deepEqual(progress.map((c) => c.id).sort(), [...cloneIds].sort());
      const detail = await viewer.trpc.templates.get.query({ id: templateId });
      assert.equal(detail.clonesMade, 2);
      assert.equal(detail.clones.length, 2);
    }),
  );

  it(
    "refuses a clone that would change the machine, naming the field",
    track(async () => {
      const memory = await operator.mutate("templates.clone", {
        id: templateId,
        count: 1,
        overrides: { memoryBytes: 256 * MIB },
      });
      assert.equal(memory.status, 400);
      assert.match(
        errorOf(memory).message,
        /^overrides\.memoryBytes: a clone has its template's memory size/,
      );
      const none = await operator.mutate("templates.clone", { id: templateId, count: 0 });
      assert.equal(none.status, 400);
      assert.match(errorOf(none).message, /^count: must be 1\.\.50/);
      const unknown = await operator.mutate("templates.clone", { id: "no-such", count: 1 });
      assert.equal(unknown.status, 404);
      assert.equal((await viewer.trpc.templates.get.query({ id: templateId })).clones.length, 2);
    }),
  );

  it(
    "deletes the template; its clones keep running",
    track(async () => {
      const deleted = await operator.trpc.templates.delete.mutate({ id: templateId });
      assert.equal(deleted.name, "web");
      assert.deepEqual(await viewer.trpc.templates.list.query(), []);
      for (const id of cloneIds) {
        assert.equal((await viewer.trpc.vms.get.query({ id })).state, "running");
      }
      const gone = await operator.mutate("templates.delete", { id: templateId });
      assert.equal(gone.status, 404);
    }),
  );
});

describe("templates: audit and OpenAPI", () => {
  it(
    "audits saving, cloning and deleting, with their results",
    track(async () => {
      const admin = await tokenApi(stack, "admin", "tpl-auditor");
      const entries = await admin.trpc.audit.list.query({ limit: 500 });
      const has = (action: string, result: string) =>
        entries.some((e) => e.action === action && e.result === result && e.target === "web");
      assert.ok(has("templates.create", "ok"));
      assert.ok(has("templates.create", "error"), "the second save of 'web'");
      assert.ok(has("templates.clone", "ok"));
      assert.ok(has("templates.clone", "error"), "the clone with other memory");
      assert.ok(has("templates.delete", "ok"));
    }),
  );

  it(
    "lists the template procedures",
    track(async () => {
      const response = await fetch(`${stack.url}/api/v1/openapi.json`, {
        headers: { authorization: `Bearer ${operator.token ?? ""}` },
      });
      const doc = (await response.json()) as { paths: Record<string, Record<string, unknown>> };
      for (const path of ["templates.list", "templates.get", "templates.clones"]) {
        assert.ok("get" in (doc.paths[`/api/trpc/${path}`] ?? {}), path);
      }
      for (const path of ["templates.create", "templates.clone", "templates.delete"]) {
        assert.ok("post" in (doc.paths[`/api/trpc/${path}`] ?? {}), path);
      }
      assert.match(
        JSON.stringify(doc.paths["/api/trpc/templates.clone"]),
        /"count":\{"type":"integer","minimum":1,"maximum":50\}/,
      );
    }),
  );
});
