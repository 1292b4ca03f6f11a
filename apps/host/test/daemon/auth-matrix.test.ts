// virgad's auth matrix (issue 16): every procedure of its tRPC router, over
// HTTP and over its websocket, and its other routes, called for real by
// each kind of caller — no token, a wrong token, the right token in the
// wrong place (the URL, a Basic header), the read token and the full token
// — against the table below of which scope each procedure needs. The table
// is checked against the router first, so a new procedure cannot be left
// out. Refused calls carry inputs that would do harm (kill the running VM,
// delete it, make an image); allowed ones carry inputs that fail validation
// or find nothing, so the running VM, its devices, the images, templates
// and migrations must all be as they were afterwards.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import WebSocket from "ws";
import {
  assertCoversRouter,
  jsonReply,
  outcomeOf,
  routerProcedures,
  sseReply,
  type AuthOutcome,
  type Reply,
} from "../support/auth-matrix";
import { appRouter } from "../../src/daemon/router";
import { ConsoleWatcher, withVirgad, type VirgadFixture, type VirgadProcess } from "./harness";

type Scope = "read" | "full";
/** "refused": any error at all (a write sent as a read must not run, whatever it answers). */
type Outcome = AuthOutcome | "refused";

const VICTIM = "victim";
const MiB = 1024 * 1024;

interface ProcedureRule {
  needs: Scope;
  /** The input a refused caller sends: one that would change something if it got through. */
  harmful?: (fx: VirgadFixture) => unknown;
  /** The input an allowed caller sends (default `{}`): it must fail validation or find nothing. */
  inert?: unknown;
}

const victim = () => ({ id: VICTIM });

/** The scope each procedure needs. Every procedure of the router must be here, and only those. */
const PROCEDURES: Record<string, ProcedureRule> = {
  "host.info": { needs: "read" },
  "host.whoami": { needs: "read" },
  "host.pciDevices": { needs: "read" },
  "vm.list": { needs: "read" },
  "vm.get": { needs: "read", harmful: victim },
  "vm.create": { needs: "full", harmful: (fx) => ({ id: "intruder", config: fx.probeConfig() }) },
  "vm.start": { needs: "full", harmful: victim },
  "vm.pause": { needs: "full", harmful: victim },
  "vm.resume": { needs: "full", harmful: victim },
  "vm.quit": { needs: "full", harmful: victim },
  "vm.kill": { needs: "full", harmful: victim },
  "vm.delete": { needs: "full", harmful: victim },
  "vm.cpus": { needs: "read", harmful: victim },
  "vm.qmp": { needs: "full", harmful: () => ({ id: VICTIM, execute: "quit" }) },
  "vm.events": { needs: "read", inert: { id: "no-such-vm" } },
  "vm.console": { needs: "read", inert: { id: "no-such-vm" } },
  "vm.consoleInput": { needs: "full", harmful: () => ({ id: VICTIM, data: "poweroff\n" }) },
  "vm.devices": { needs: "read", harmful: victim },
  "vm.attachDisk": {
    needs: "full",
    harmful: (fx) => ({ id: VICTIM, file: fx.kernel, readOnly: true }),
  },
  "vm.detachDisk": { needs: "full", harmful: () => ({ id: VICTIM, slot: 0 }) },
  "vm.attachNic": { needs: "full", harmful: () => ({ id: VICTIM, tap: "tap0" }) },
  "vm.detachNic": { needs: "full", harmful: () => ({ id: VICTIM, slot: 0 }) },
  "vm.attachPciDisk": {
    needs: "full",
    harmful: (fx) => ({ id: VICTIM, file: fx.kernel, readOnly: true }),
  },
  "vm.attachPciNic": { needs: "full", harmful: () => ({ id: VICTIM, tap: "tap0" }) },
  "vm.attachVfio": { needs: "full", harmful: () => ({ id: VICTIM, host: "0000:00:00.0" }) },
  "vm.detachPci": { needs: "full", harmful: () => ({ id: VICTIM, device: "any" }) },
  "vm.balloon": { needs: "read", harmful: victim },
  "vm.setBalloon": { needs: "full", harmful: () => ({ id: VICTIM, bytes: 16 * MiB }) },
  "vm.snapshot": { needs: "full", harmful: () => ({ id: VICTIM, template: "intruder" }) },
  "vm.clone": { needs: "full", harmful: () => ({ template: "intruder", count: 1 }) },
  "vm.migrate": {
    needs: "full",
    harmful: () => ({
      id: VICTIM,
      destination: { url: "http://127.0.0.1:9", token: "x" },
    }),
  },
  "vm.migrateCancel": { needs: "full", harmful: victim },
  "vm.migration": { needs: "read", harmful: () => ({ migrationId: "any" }) },
  "vm.migrations": { needs: "read" },
  "migration.prepareIncoming": {
    needs: "full",
    harmful: (fx) => ({
      migrationId: "intruder",
      id: "intruder",
      name: "intruder",
      config: fx.probeConfig(),
    }),
  },
  "migration.abortIncoming": {
    needs: "full",
    harmful: () => ({ id: VICTIM, migrationId: "intruder" }),
  },
  "image.list": { needs: "read" },
  "image.create": { needs: "full", harmful: () => ({ name: "intruder.img", sizeBytes: MiB }) },
  "template.list": { needs: "read" },
  "template.get": { needs: "read", harmful: () => ({ name: "any" }) },
  "template.delete": { needs: "full", harmful: () => ({ name: "any" }) },
};

interface Caller {
  name: string;
  scope: Scope | null;
  headers: Record<string, string>;
  /** Appended to the URL (a token there must count for nothing). */
  query?: string;
}

function callersOf(virgad: VirgadProcess): Caller[] {
  const wrong = randomBytes(32).toString("hex");
  return [
    { name: "no token", scope: null, headers: {} },
    { name: "wrong token", scope: null, headers: { authorization: `Bearer ${wrong}` } },
    { name: "full token in the URL", scope: null, headers: {}, query: `token=${virgad.token}` },
    {
      name: "full token as Basic",
      scope: null,
      headers: { authorization: `Basic ${virgad.token}` },
    },
    { name: "read token", scope: "read", headers: { authorization: `Bearer ${virgad.readToken}` } },
    { name: "full token", scope: "full", headers: { authorization: `Bearer ${virgad.token}` } },
  ];
}

function expectedFor(needs: Scope, caller: Caller): Outcome {
  if (caller.scope === null) return "UNAUTHORIZED";
  return caller.scope === "full" || needs === "read" ? "allowed" : "FORBIDDEN";
}

class Counter {
  calls = 0;
}

async function httpCall(
  virgad: VirgadProcess,
  counter: Counter,
  procedure: string,
  type: string,
  input: unknown,
  caller: Caller,
  method = type === "mutation" ? "POST" : "GET",
): Promise<Reply> {
  counter.calls++;
  const params = new URLSearchParams(caller.query ?? "");
  if (method === "GET" && input !== undefined) params.set("input", JSON.stringify(input));
  const query = params.size > 0 ? `?${params.toString()}` : "";
  const url = `${virgad.url}/trpc/${procedure}${query}`;
  if (type === "subscription" && method === "GET") return sseReply(url, caller.headers);
  return jsonReply(
    await fetch(url, {
      method,
      headers: { ...caller.headers, "content-type": "application/json" },
      ...(method === "POST" ? { body: input === undefined ? null : JSON.stringify(input) } : {}),
    }),
  );
}

/** One websocket to virgad's /trpc, speaking tRPC's JSON-RPC messages. */
class Socket {
  private readonly ws: WebSocket;
  private nextId = 1;
  private readonly waiting = new Map<number, (message: WsMessage) => void>();
  readonly status: Promise<number>;

  constructor(
    virgad: VirgadProcess,
    caller: Caller,
    readonly counter: Counter,
    route = "/trpc",
  ) {
    counter.calls++;
    const query = caller.query === undefined ? "" : `?${caller.query}`;
    this.ws = new WebSocket(`ws://127.0.0.1:${virgad.port}${route}${query}`, {
      headers: caller.headers,
    });
    this.status = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve(101));
      this.ws.once("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        this.ws.terminate();
      });
      this.ws.once("error", reject);
    });
    this.ws.on("message", (raw: Buffer) => {
      const message = JSON.parse(raw.toString("utf8")) as WsMessage;
      if (typeof message.id === "number") this.waiting.get(message.id)?.(message);
    });
  }

  /** Sends one call as `method`; its first answer (an error, data, or "started"). */
  async call(method: string, path: string, input: unknown): Promise<Reply> {
    this.counter.calls++;
    const id = this.nextId++;
    const answered = new Promise<WsMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${method} ${path}`)), 10_000);
      this.waiting.set(id, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });
    this.ws.send(JSON.stringify({ id, method, params: { path, input } }));
    const message = await answered;
    this.waiting.delete(id);
    if (message.result?.type === "started" || method === "subscription") {
      this.ws.send(JSON.stringify({ id, method: "subscription.stop" }));
    }
    if (message.error !== undefined) {
      const code = message.error.data?.code ?? null;
      const status = message.error.data?.httpStatus ?? 500;
      return { status, code, message: message.error.message ?? "" };
    }
    return { status: 200, code: null, message: message.result?.type ?? "" };
  }

  close(): void {
    this.ws.close();
  }
}

interface WsMessage {
  id?: number | string | null;
  result?: { type?: string; data?: unknown };
  error?: { message?: string; data?: { code?: string; httpStatus?: number } };
}

/** Whatever a refused call could have changed, as the full token reads it. */
async function snapshot(virgad: VirgadProcess) {
  const client = virgad.client();
  const [vms, images, templates, migrations, devices] = await Promise.all([
    client.vm.list.query(),
    client.image.list.query(),
    client.template.list.query(),
    client.vm.migrations.query(),
    client.vm.devices.query({ id: VICTIM }),
  ]);
  return {
    vms: vms.map((vm) => `${vm.id}:${vm.state}:${vm.pid ?? ""}`),
    images: images.map((image) => image.path),
    templates: templates.map((template) => template.name),
    migrations: migrations.map((migration) => migration.migrationId),
    devices: JSON.stringify({ disks: devices.disks, nics: devices.nics }),
  };
}

describe("virgad's auth matrix", () => {
  it("lists every procedure of virgad's router, and nothing else", () => {
    assertCoversRouter(routerProcedures(appRouter), PROCEDURES);
  });

  it(
    "every procedure over HTTP and the websocket, and every other route, against the table",
    { timeout: 120_000 },
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const full = virgad.client();
        await full.vm.create.mutate({ id: VICTIM, config: fx.probeConfig() });
        await full.vm.start.mutate({ id: VICTIM });
        fx.track((await full.vm.get.query({ id: VICTIM })).pid);
        // Booted, so its devices' state is settled before the "before" picture.
        const output = new ConsoleWatcher(full, VICTIM);
        await output.waitFor(/PROBE ready/);
        output.close();
        const before = await snapshot(virgad);
        assert.match(before.vms.join(), /victim:running:\d+/);

        const counter = new Counter();
        const callers = callersOf(virgad);
        const types = routerProcedures(appRouter);
        const wrong: string[] = [];
        const check = (where: string, expected: Outcome, reply: Reply, rule?: ProcedureRule) => {
          const got = outcomeOf(reply);
          const seen = `${where}: expected ${expected}, got ${reply.status} ${reply.code ?? ""} ${reply.message}`;
          if (expected === "refused") {
            if (reply.status < 400) wrong.push(seen);
            return;
          }
          if (got !== expected) {
            wrong.push(seen);
            return;
          }
          if (expected === "UNAUTHORIZED" && !/missing or invalid bearer token/.test(reply.message))
            wrong.push(`${seen}: not the token check's refusal`);
          if (expected === "FORBIDDEN" && !/needs a token of scope 'full'/.test(reply.message))
            wrong.push(`${seen}: not the scope check's refusal`);
          // An allowed write with the inert input must be refused for what it is, or find nothing.
          if (expected === "allowed" && rule !== undefined && reply.status < 400) {
            if (types.get(where.split(" ")[0] ?? "") === "mutation")
              wrong.push(`${seen}: it succeeded`);
          }
        };
        const inputFor = (rule: ProcedureRule, expected: Outcome) =>
          expected === "allowed" ? ("inert" in rule ? rule.inert : {}) : rule.harmful?.(fx);

        // HTTP: every procedure, every caller.
        for (const [name, type] of types) {
          const rule = PROCEDURES[name];
          assert.ok(rule, name);
          for (const caller of callers) {
            const expected = expectedFor(rule.needs, caller);
            const reply = await httpCall(
              virgad,
              counter,
              name,
              type,
              inputFor(rule, expected),
              caller,
            );
            check(`${name} over HTTP as ${caller.name}`, expected, reply, rule);
          }
          // A write sent as a read (GET) by the read token is not run.
          if (type === "mutation") {
            const reader = callers.find((c) => c.scope === "read");
            assert.ok(reader);
            const reply = await httpCall(
              virgad,
              counter,
              name,
              type,
              rule.harmful?.(fx),
              reader,
              "GET",
            );
            check(`${name} as GET with the read token`, "refused", reply);
          }
        }

        // The websocket: refused at the upgrade without a token in the header;
        // with one, every procedure by its scope, and a write disguised as a
        // query or a subscription is not run either.
        for (const caller of callers) {
          const socket = new Socket(virgad, caller, counter);
          const status = await socket.status;
          const expectedStatus = caller.scope === null ? 401 : 101;
          if (status !== expectedStatus) {
            wrong.push(
              `websocket upgrade as ${caller.name}: expected ${expectedStatus}, got ${status}`,
            );
            continue;
          }
          if (caller.scope === null) continue;
          for (const [name, type] of types) {
            const rule = PROCEDURES[name];
            assert.ok(rule, name);
            const expected = expectedFor(rule.needs, caller);
            const reply = await socket.call(type, name, inputFor(rule, expected));
            check(`${name} over the websocket as ${caller.name}`, expected, reply, rule);
            if (type === "mutation" && caller.scope === "read") {
              for (const disguise of ["query", "subscription"]) {
                const disguised = await socket.call(disguise, name, rule.harmful?.(fx));
                check(`${name} sent as a ${disguise} with the read token`, "refused", disguised);
              }
            }
          }
          socket.close();
        }

        // Everything beside /trpc: nothing for anyone, but the token is checked first.
        for (const caller of callers) {
          for (const route of ["/", "/anything", "/trpc"]) {
            counter.calls++;
            const query = caller.query === undefined ? "" : `?${caller.query}`;
            const response = await fetch(`${virgad.url}${route}${query}`, {
              headers: caller.headers,
            });
            const expected = caller.scope === null ? 401 : 404;
            if (response.status !== expected)
              wrong.push(
                `${route} as ${caller.name}: expected ${expected}, got ${response.status}`,
              );
          }
          const socket = new Socket(virgad, caller, counter, "/elsewhere");
          const status = await socket.status;
          const expected = caller.scope === null ? 401 : 404;
          if (status !== expected)
            wrong.push(
              `websocket on /elsewhere as ${caller.name}: expected ${expected}, got ${status}`,
            );
          socket.close();
        }

        assert.deepEqual(wrong, [], "calls whose outcome differs from the table");
        assert.deepEqual(await snapshot(virgad), before, "no refused call changed anything");
        const writes = [...types.values()].filter((type) => type === "mutation").length;
        console.log(
          `auth matrix (virgad): ${types.size} procedures (${writes} mutations) × ${callers.length} callers over HTTP ` +
            `= ${types.size * callers.length}, + ${writes} writes as GET; websocket: ${callers.length} upgrades, ` +
            `${types.size} procedures × 2 scopes + ${writes * 2} disguised writes; ` +
            `3 other routes and 1 other socket path × ${callers.length}; ${counter.calls} calls made`,
        );
      }),
  );
});
