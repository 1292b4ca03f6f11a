// The portal's automation API against a real portal, a real virgad and real
// probe-guest VMs: token auth, roles, the QMP gateway, field-named 4xx
// errors, CSRF, the console websocket and the audit log.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import {
  errorOf,
  FailureWatch,
  PortalApi,
  signIn,
  startStack,
  statusOf,
  tokenApi,
  waitFor,
  type Stack,
} from "./harness";

let stack: Stack;
let operator: PortalApi;
let viewer: PortalApi;
let hostId: string;
let probeDefinitionId: string;
let vmId: string;
const watch = new FailureWatch();

before(async () => {
  stack = await startStack();
  await setUp().catch((error: unknown) => {
    watch.fail();
    throw error;
  });
});

async function setUp(): Promise<void> {
  operator = await tokenApi(stack, "operator", "ci-operator");
  viewer = await tokenApi(stack, "viewer", "ci-viewer");
  const [host] = await operator.trpc.hosts.list.query();
  assert.ok(host, "the local host is registered");
  hostId = host.id;
  const definitions = await operator.trpc.definitions.list.query();
  const probe = definitions.find((d) => d.name === "probe-guest");
  assert.ok(probe, "the probe guest is offered");
  probeDefinitionId = probe.id;
  vmId = (await operator.trpc.vms.create.mutate({ definitionId: probeDefinitionId, hostId })).id;
}

after(async () => {
  await watch.stop(stack);
});

const track = (fn: () => Promise<void>) => watch.track(fn);

describe("token auth", () => {
  it(
    "refuses calls without a token or with a wrong one (401)",
    track(async () => {
      assert.equal((await new PortalApi(stack.url, null).query("vms.list")).status, 401);
      assert.equal((await new PortalApi(stack.url, "virga_wrong").query("vms.list")).status, 401);
      assert.equal(
        (await new PortalApi(stack.url, null).qmp(vmId, { execute: "query-status" })).status,
        401,
      );
    }),
  );

  it(
    "accepts a valid token over plain HTTP, and stops accepting it once revoked",
    track(async () => {
      const admin = await signIn(stack.url, "admin", stack.adminPassword);
      const created = await admin.trpc.tokens.create.mutate({
        name: "short-lived",
        role: "viewer",
      });
      const client = new PortalApi(stack.url, created.token);
      const list = await client.query("vms.list");
      assert.equal(list.status, 200);
      assert.ok(JSON.stringify(list.body).includes(vmId));
      const listed = JSON.stringify(await admin.trpc.tokens.list.query());
      assert.ok(!listed.includes(created.token), "the token's secret is never listed");
      await admin.trpc.tokens.revoke.mutate({ id: created.id });
      assert.equal((await client.query("vms.list")).status, 401);
    }),
  );
});

describe("roles", () => {
  it(
    "a viewer cannot create, start, pause or stop VMs",
    track(async () => {
      const create = await statusOf(
        viewer.trpc.vms.create.mutate({ definitionId: probeDefinitionId, hostId }),
      );
      assert.equal(create.status, 403);
      assert.match(create.message, /needs the operator role/);
      assert.equal((await statusOf(viewer.trpc.vms.start.mutate({ id: vmId }))).status, 403);
      assert.equal((await statusOf(viewer.trpc.vms.pause.mutate({ id: vmId }))).status, 403);
      assert.equal(
        (await statusOf(viewer.trpc.vms.bulk.mutate({ ids: [vmId], action: "quit" }))).status,
        403,
      );
      assert.equal((await viewer.qmp(vmId, { execute: "stop" })).status, 403);
      assert.equal((await viewer.trpc.vms.get.query({ id: vmId })).state, "running");
    }),
  );

  it(
    "QMP gateway and console: viewers send the named queries, operators also act, nobody sends the rest",
    track(async () => {
      const matrix: [string, PortalApi, string, number, RegExp | null][] = [
        ["viewer", viewer, "query-status", 200, null],
        ["viewer", viewer, "query-hotpluggable-cpus", 200, null],
        ["viewer", viewer, "stop", 403, /^execute: 'stop' needs the operator role$/],
        ["viewer", viewer, "quit", 403, /^execute: 'quit' needs the operator role$/],
        [
          "viewer",
          viewer,
          "query-unknown",
          403,
          /^execute: 'query-unknown' is not allowed through the gateway$/,
        ],
        ["operator", operator, "query-status", 200, null],
        [
          "operator",
          operator,
          "query-unknown",
          403,
          /^execute: 'query-unknown' is not allowed through the gateway$/,
        ],
        [
          "operator",
          operator,
          "getfd",
          403,
          /^execute: 'getfd' is not allowed through the gateway: it takes a descriptor/,
        ],
        [
          "operator",
          operator,
          "human-monitor-command",
          403,
          /^execute: 'human-monitor-command' is not allowed through the gateway$/,
        ],
      ];
      for (const [role, api, execute, status, message] of matrix) {
        const what = `${role} ${execute}`;
        const reply = await api.qmp(vmId, { execute });
        assert.equal(reply.status, status, `${what}: ${JSON.stringify(reply.body)}`);
        // The UI's QMP console (tRPC vms.qmp) follows the same table.
        const viaConsole = await statusOf(api.trpc.vms.qmp.mutate({ id: vmId, execute }));
        assert.equal(viaConsole.status, status, `${what} (console): ${viaConsole.message}`);
        if (message !== null) {
          assert.match(errorOf(reply).message, message, what);
          assert.match(viaConsole.message, message, `${what} (console)`);
        }
      }
      assert.equal((await viewer.trpc.vms.get.query({ id: vmId })).state, "running");
    }),
  );
});

describe("QMP gateway", () => {
  it(
    "relays query-status exactly as the VM's QMP answers it",
    track(async () => {
      const viaPortal = await operator.qmp(vmId, { execute: "query-status" });
      assert.equal(viaPortal.status, 200);
      const hostToken = readFileSync(path.join(stack.dataDir, "host", "token"), "utf8").trim();
      const direct = await fetch(`${stack.hostUrl}/trpc/vm.qmp`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${hostToken}` },
        body: JSON.stringify({ id: vmId, execute: "query-status" }),
      });
      const directReply = ((await direct.json()) as { result: { data: unknown } }).result.data;
      assert.deepEqual(viaPortal.body, directReply);
      assert.deepEqual(viaPortal.body, {
        return: { running: true, singlestep: false, status: "running" },
      });
    }),
  );

  it(
    "passes QMP errors through as the VM's answer",
    track(async () => {
      const reply = await operator.qmp(vmId, { execute: "query-status", arguments: { bogus: 1 } });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.body, {
        error: { class: "GenericError", desc: "Parameter 'bogus' is unexpected" },
      });
    }),
  );

  it(
    "refuses host paths and addresses outside virgad's image directories, naming the field",
    track(async () => {
      const cases: [Record<string, unknown>, RegExp][] = [
        [
          {
            execute: "blockdev-add",
            arguments: { "node-name": "d", file: { driver: "file", filename: "/etc/shadow" } },
          },
          /^arguments\.file\.filename: '\/etc\/shadow' is outside the image directories/,
        ],
        [
          { execute: "migrate", arguments: { uri: "exec:touch /tmp/x" } },
          /^arguments\.uri: 'exec:' is not allowed through the gateway/,
        ],
        [
          { execute: "netdev_add", arguments: { id: "n", fd: "tap" } },
          /^arguments\.fd: not allowed through the gateway/,
        ],
      ];
      for (const [body, message] of cases) {
        const reply = await operator.qmp(vmId, body);
        assert.equal(reply.status, 403, JSON.stringify(reply.body));
        assert.match(errorOf(reply).message, message);
      }
      assert.equal((await operator.trpc.vms.get.query({ id: vmId })).state, "running");
    }),
  );

  it(
    "an operator pauses and resumes with stop/cont, and the portal follows",
    track(async () => {
      assert.deepEqual((await operator.qmp(vmId, { execute: "stop" })).body, { return: {} });
      await waitFor("paused in the portal", async () =>
        (await operator.trpc.vms.list.query()).some(
          (vm) => vm.id === vmId && vm.state === "paused",
        ),
      );
      assert.deepEqual((await operator.qmp(vmId, { execute: "cont" })).body, { return: {} });
      await waitFor("running in the portal", async () =>
        (await operator.trpc.vms.list.query()).some(
          (vm) => vm.id === vmId && vm.state === "running",
        ),
      );
    }),
  );

  it(
    "answers 404 for an unknown VM",
    track(async () => {
      const reply = await operator.qmp("no-such-vm", { execute: "query-status" });
      assert.equal(reply.status, 404);
      assert.match(errorOf(reply).message, /no-such-vm/);
    }),
  );
});

describe("bad input", () => {
  it(
    "gateway: 400 naming the field",
    track(async () => {
      const wrongType = await operator.qmp(vmId, { execute: 5 });
      assert.equal(wrongType.status, 400);
      assert.match(errorOf(wrongType).message, /^execute: /);
      const missing = await operator.qmp(vmId, { arguments: {} });
      assert.equal(missing.status, 400);
      assert.match(errorOf(missing).message, /execute: Required/);
      const badArguments = await operator.qmp(vmId, { execute: "query-status", arguments: [1] });
      assert.equal(badArguments.status, 400);
      assert.match(errorOf(badArguments).message, /arguments: /);
    }),
  );

  it(
    "definitions: 400 naming the VmConfig field, checked with the VMM's schema",
    track(async () => {
      const [definition] = await operator.trpc.definitions.list.query();
      assert.ok(definition);
      const config = { ...definition.config, smp: { ...definition.config.smp, cpus: 0 } };
      const reply = await operator.mutate("definitions.create", { name: "broken", config });
      assert.equal(reply.status, 400);
      const error = errorOf(reply);
      assert.match(error.message, /config\.smp\.cpus: must be 1\.\.254/);
      assert.equal(error.data?.fields?.[0]?.path, "config.smp.cpus");
      const memory = await operator.mutate("definitions.create", {
        name: "broken",
        config: { ...definition.config, memoryBytes: 1000 },
      });
      assert.equal(memory.status, 400);
      assert.match(errorOf(memory).message, /config\.memoryBytes/);
      const unknownKey = await operator.mutate("definitions.create", {
        name: "broken",
        config: { ...definition.config, nic: "tap0" },
      });
      assert.equal(unknownKey.status, 400);
      assert.match(errorOf(unknownKey).message, /'nic'/);
    }),
  );

  it(
    "vms.create and hosts.add: 400 naming the field",
    track(async () => {
      const noDefinition = await operator.mutate("vms.create", { hostId });
      assert.equal(noDefinition.status, 400);
      assert.match(errorOf(noDefinition).message, /definitionId: Required/);
      const admin = await tokenApi(stack, "admin", "ci-admin");
      const badUrl = await admin.mutate("hosts.add", {
        name: "other",
        url: "not a url",
        token: "x",
      });
      assert.equal(badUrl.status, 400);
      assert.match(errorOf(badUrl).message, /url: /);
      const wrongToken = await admin.mutate("hosts.add", {
        name: "other",
        url: "http://127.0.0.1:1",
        token: "x",
      });
      assert.equal(wrongToken.status, 400);
      assert.match(errorOf(wrongToken).message, /^url: host 'other' unreachable/);
      const again = await admin.mutate("hosts.add", {
        name: "again",
        url: stack.hostUrl,
        token: "x",
      });
      assert.equal(again.status, 409);
      assert.match(errorOf(again).message, /^url: already registered as 'local'/);
    }),
  );
});

describe("browser sessions", () => {
  it(
    "refuse writes without the CSRF token or from another origin",
    track(async () => {
      const session = await signIn(stack.url, "admin", stack.adminPassword);
      const withoutCsrf = await fetch(`${stack.url}/api/trpc/tokens.create`, {
        method: "POST",
        headers: { "content-type": "application/json", cookie: session.session?.cookie ?? "" },
        body: JSON.stringify({ name: "csrf" }),
      });
      assert.equal(withoutCsrf.status, 403);
      const fromElsewhere = await fetch(`${stack.url}/api/trpc/auth.signIn`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: "http://elsewhere.invalid" },
        body: JSON.stringify({ username: "admin", password: stack.adminPassword }),
      });
      assert.equal(fromElsewhere.status, 403);
      assert.equal((await session.mutate("tokens.create", { name: "with-csrf" })).status, 200);
    }),
  );

  it(
    "refuse a wrong password",
    track(async () => {
      const reply = await new PortalApi(stack.url, null).mutate("auth.signIn", {
        username: "admin",
        password: "nope",
      });
      assert.equal(reply.status, 401);
    }),
  );
});

describe("serial console websocket", () => {
  /**
   * Reads the console until `until` shows up in what arrived (then a little
   * longer, to catch anything repeated), optionally typing once connected.
   */
  function readConsole(since: number | null, until: string, type?: string) {
    return new Promise<{ text: string; next: number }>((resolve, reject) => {
      const query = since === null ? "" : `?since=${since}`;
      const ws = new WebSocket(
        `${stack.url.replace("http", "ws")}/api/v1/vms/${vmId}/console${query}`,
        {
          headers: { authorization: `Bearer ${operator.token ?? ""}` },
        },
      );
      let text = "";
      let next = since ?? 0;
      let settled = false;
      const timeout = setTimeout(() => {
        ws.close();
        reject(
          new Error(`console never showed ${JSON.stringify(until)}; got ${JSON.stringify(text)}`),
        );
      }, 90_000);
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        setTimeout(() => {
          ws.close();
          resolve({ text, next });
        }, 300);
      };
      ws.on("message", (raw: Buffer) => {
        const frame = JSON.parse(raw.toString("utf8")) as {
          type: string;
          offset: number;
          data: string;
        };
        if (frame.type !== "data") return;
        const bytes = Buffer.from(frame.data, "base64");
        text += bytes.toString("utf8");
        next = frame.offset + bytes.length;
        if (text.includes(until)) finish();
      });
      ws.on("error", reject);
      ws.on("open", () => {
        if (type !== undefined) ws.send(JSON.stringify({ type: "input", data: type }));
      });
    });
  }

  it(
    "shows the boot log to a late subscriber, takes typing, resumes without loss",
    track(async () => {
      const first = await readConsole(null, "PROBE ready\nprobe> ");
      const typed = await readConsole(first.next, "OK help\nprobe> ", "help\r");
      assert.doesNotMatch(typed.text, /PROBE ready/, "a resumed console repeated old output");
      assert.match(typed.text, /^help\ncommands:/);
      const again = await readConsole(null, "OK help\nprobe> ");
      assert.equal(again.text, first.text + typed.text);
    }),
  );

  it(
    "refuses an upgrade without credentials",
    track(async () => {
      await assert.rejects(
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`${stack.url.replace("http", "ws")}/api/v1/vms/${vmId}/console`);
          ws.on("open", resolve);
          ws.on("error", reject);
        }),
        /401/,
      );
    }),
  );
});

describe("audit log", () => {
  it(
    "records who did what, through which front end, with the result",
    track(async () => {
      const admin = await tokenApi(stack, "admin", "auditor");
      const entries = await admin.trpc.audit.list.query({ limit: 500 });
      const has = (action: string, result: string, via?: string) =>
        entries.some(
          (e) => e.action === action && e.result === result && (via === undefined || e.via === via),
        );
      assert.ok(has("vms.create", "ok", "api"), "vms.create ok");
      assert.ok(has("vms.create", "error", "api"), "the viewer's refused vms.create");
      assert.ok(has("gateway.qmp", "ok", "gateway"), "gateway query");
      assert.ok(has("auth.signIn", "error"), "failed sign-in");
      assert.ok(has("console.attach", "ok", "console"), "console attach");
      assert.ok(
        entries.some(
          (e) => e.action === "vms.create" && e.actor.includes("ci-operator") && e.target === vmId,
        ),
      );
      assert.ok(
        !JSON.stringify(entries).includes(stack.adminPassword),
        "no password in the audit log",
      );
    }),
  );
});

describe("lifecycle", () => {
  it(
    "quits and deletes the VM",
    track(async () => {
      assert.equal((await operator.trpc.vms.quit.mutate({ id: vmId })).state, "shutdown");
      await operator.trpc.vms.delete.mutate({ id: vmId });
      assert.equal((await statusOf(operator.trpc.vms.get.query({ id: vmId }))).status, 404);
    }),
  );
});
