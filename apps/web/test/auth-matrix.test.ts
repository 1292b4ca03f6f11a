// The portal's auth matrix (issue 16): every tRPC procedure, every API route
// of the custom server, the console websocket and every page, called for
// real against a running portal, virgad and probe-guest VM by each kind of
// caller — nobody, a bad token, a bad session, a revoked token, a viewer,
// an operator and an admin (each with a token and with a browser session),
// a session that leaves out its CSRF header, and an admin's viewer-role
// token — and checked against the table of who may call what below.
//
// The table is checked against the routers, the route lists and the app
// directory first: a procedure, route or page missing from it (or named in
// it but gone) fails the test. A refused call carries an input that would
// do harm if it got through (kill the VM, delete the host, make an admin);
// an allowed call carries one that fails validation or targets nothing, so
// the whole matrix must leave every user, token, host, definition, VM,
// image, template and migration as it found them.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import {
  assertCoversRouter,
  jsonReply,
  outcomeOf,
  routerProcedures,
  sseReply,
  type AuthOutcome as Outcome,
  type Reply,
} from "@virga/host/test/support/auth-matrix";
import { hasRole, type Role } from "../src/server/auth/roles";
import {
  API_ROUTES,
  SOCKET_ROUTES,
  type ApiRoute,
  type SocketRoute,
} from "../src/server/http/routes";
import { appRouter } from "../src/server/trpc/root";
import { FailureWatch, PortalApi, signIn, startStack, waitFor, type Stack } from "./harness";

type Access = "public" | Role;

/** What the tests need to name real things in harmful inputs. */
interface Fixture {
  vmId: string;
  hostId: string;
  definitionId: string;
  probeConfig: unknown;
  userIds: Record<Role, string>;
  observerTokenId: string;
}

interface ProcedureRule {
  access: Access;
  /** The input a refused caller sends: one that would change something if it got through. */
  harmful?: (fx: Fixture) => unknown;
  /** The input an allowed caller sends (default `{}`): it must fail validation or find nothing. */
  inert?: unknown;
}

const vm = (fx: Fixture) => ({ id: fx.vmId });
const MiB = 1024 * 1024;

/** Who may call each tRPC procedure. Every procedure of the router must be here, and only those. */
const PROCEDURES: Record<string, ProcedureRule> = {
  "auth.me": { access: "public" },
  "auth.signIn": {
    access: "public",
    harmful: () => ({ username: "matrix-viewer", password: "matrix-viewer-pass" }),
  },
  "auth.signOut": { access: "viewer", inert: undefined },
  "auth.changePassword": {
    access: "viewer",
    harmful: () => ({ currentPassword: "anything", newPassword: "intruder-pass-1" }),
  },
  "users.list": { access: "admin" },
  "users.create": {
    access: "admin",
    harmful: () => ({ username: "intruder", password: "intruder-pass-1", role: "admin" }),
  },
  "users.setRole": {
    access: "admin",
    harmful: (fx) => ({ id: fx.userIds.viewer, role: "admin" }),
  },
  "users.delete": { access: "admin", harmful: (fx) => ({ id: fx.userIds.operator }) },
  "tokens.list": { access: "viewer" },
  "tokens.create": { access: "viewer", harmful: () => ({ name: "intruder", role: "admin" }) },
  "tokens.revoke": { access: "viewer", harmful: (fx) => ({ id: fx.observerTokenId }) },
  "hosts.list": { access: "viewer" },
  "hosts.get": { access: "viewer", harmful: (fx) => ({ id: fx.hostId }) },
  "hosts.pciDevices": { access: "viewer", harmful: (fx) => ({ id: fx.hostId }) },
  "hosts.add": {
    access: "admin",
    harmful: () => ({ name: "intruder", url: "http://127.0.0.1:9", token: "x".repeat(64) }),
  },
  "hosts.remove": { access: "admin", harmful: (fx) => ({ id: fx.hostId }) },
  "definitions.list": { access: "viewer" },
  "definitions.get": { access: "viewer", harmful: (fx) => ({ id: fx.definitionId }) },
  "definitions.create": {
    access: "operator",
    harmful: (fx) => ({ name: "intruder", config: fx.probeConfig }),
  },
  "definitions.update": {
    access: "operator",
    harmful: (fx) => ({ id: fx.definitionId, name: "renamed-by-intruder" }),
  },
  "definitions.clone": {
    access: "operator",
    harmful: (fx) => ({ id: fx.definitionId, name: "intruder-copy" }),
  },
  "definitions.delete": { access: "operator", harmful: (fx) => ({ id: fx.definitionId }) },
  "vms.list": { access: "viewer" },
  "vms.get": { access: "viewer", harmful: vm },
  "vms.create": {
    access: "operator",
    harmful: (fx) => ({ definitionId: fx.definitionId, hostId: fx.hostId }),
  },
  "vms.start": { access: "operator", harmful: vm },
  "vms.pause": { access: "operator", harmful: vm },
  "vms.resume": { access: "operator", harmful: vm },
  "vms.quit": { access: "operator", harmful: vm },
  "vms.kill": { access: "operator", harmful: vm },
  "vms.delete": { access: "operator", harmful: vm },
  "vms.bulk": { access: "operator", harmful: (fx) => ({ ids: [fx.vmId], action: "kill" }) },
  "vms.cpus": { access: "viewer", harmful: vm },
  "vms.qmp": { access: "viewer", harmful: (fx) => ({ id: fx.vmId, execute: "quit" }) },
  "vms.consoleInput": {
    access: "operator",
    harmful: (fx) => ({ id: fx.vmId, data: "help\r" }),
  },
  "vms.events": { access: "viewer", harmful: vm },
  "vms.watch": { access: "viewer", inert: { lastEventId: "not-an-event-id" } },
  "vms.devices": { access: "viewer", harmful: vm },
  "vms.balloon": { access: "viewer", harmful: vm },
  "vms.attachDisk": {
    access: "operator",
    harmful: (fx) => ({ id: fx.vmId, file: "/etc/passwd", readOnly: true }),
  },
  "vms.detachDisk": { access: "operator", harmful: (fx) => ({ id: fx.vmId, slot: 0 }) },
  "vms.attachNic": { access: "operator", harmful: (fx) => ({ id: fx.vmId, tap: "tap0" }) },
  "vms.detachNic": { access: "operator", harmful: (fx) => ({ id: fx.vmId, slot: 0 }) },
  "vms.attachPciDisk": {
    access: "operator",
    harmful: (fx) => ({ id: fx.vmId, file: "/etc/passwd", readOnly: true }),
  },
  "vms.attachPciNic": { access: "operator", harmful: (fx) => ({ id: fx.vmId, tap: "tap0" }) },
  "vms.attachVfio": {
    access: "operator",
    harmful: (fx) => ({ id: fx.vmId, host: "0000:00:00.0" }),
  },
  "vms.detachPci": { access: "operator", harmful: (fx) => ({ id: fx.vmId, device: "any" }) },
  "vms.setBalloon": {
    access: "operator",
    harmful: (fx) => ({ id: fx.vmId, bytes: 16 * MiB }),
  },
  "images.list": { access: "viewer", harmful: (fx) => ({ hostId: fx.hostId }) },
  "images.create": {
    access: "operator",
    harmful: (fx) => ({ hostId: fx.hostId, name: "intruder.img", sizeBytes: MiB }),
  },
  "templates.list": { access: "viewer" },
  "templates.get": { access: "viewer", harmful: () => ({ id: "any" }) },
  "templates.clones": { access: "viewer", harmful: () => ({ id: "any" }) },
  "templates.create": {
    access: "operator",
    harmful: (fx) => ({ vmId: fx.vmId, name: "intruder" }),
  },
  "templates.clone": { access: "operator", harmful: () => ({ id: "any", count: 1 }) },
  "templates.delete": { access: "operator", harmful: () => ({ id: "any" }) },
  "migrations.list": { access: "viewer" },
  "migrations.get": { access: "viewer", harmful: () => ({ id: "any" }) },
  "migrations.start": {
    access: "operator",
    harmful: (fx) => ({ vmId: fx.vmId, destinationHostId: fx.hostId }),
  },
  "migrations.cancel": { access: "operator", harmful: () => ({ id: "any" }) },
  "audit.list": { access: "operator" },
};

/** Who may use each route of the custom server (src/server/http/routes.ts). */
const API_ROUTE_ACCESS: Record<ApiRoute, Access | "per procedure"> = {
  openapi: "public",
  health: "public",
  trpc: "per procedure",
  gateway: "viewer",
};
const SOCKET_ROUTE_ACCESS: Record<SocketRoute, Access> = { console: "viewer" };

/**
 * Every page (src/app/**\/page.tsx, by its URL): who sees it, and what a
 * signed-in browser of that role gets. Pages read the session cookie only;
 * API tokens are for scripts. Route handlers (route.ts) would be listed here too.
 */
interface PageRule {
  url: (fx: Fixture) => string;
  access: Access;
  /** What an allowed browser gets (default: the page). */
  shown?: PageOutcome;
}
const PAGES: Record<string, PageRule> = {
  "/": { url: () => "/", access: "viewer", shown: "redirect /vms" },
  "/sign-in": { url: () => "/sign-in", access: "public" },
  "/vms": { url: () => "/vms", access: "viewer" },
  "/vms/[id]": { url: (fx) => `/vms/${fx.vmId}`, access: "viewer" },
  "/definitions": { url: () => "/definitions", access: "viewer" },
  "/definitions/new": { url: () => "/definitions/new", access: "viewer" },
  "/definitions/[id]": { url: (fx) => `/definitions/${fx.definitionId}`, access: "viewer" },
  "/templates": { url: () => "/templates", access: "viewer" },
  "/templates/[id]": { url: () => "/templates/none", access: "viewer", shown: "not found" },
  "/migrations": { url: () => "/migrations", access: "viewer" },
  "/hosts": { url: () => "/hosts", access: "viewer" },
  "/tokens": { url: () => "/tokens", access: "viewer" },
  "/audit": { url: () => "/audit", access: "operator" },
  "/users": { url: () => "/users", access: "admin" },
};

type PageOutcome = "page" | "redirect /sign-in" | "redirect /vms" | "not found";

// ---- the callers

interface Caller {
  name: string;
  /** The role the portal must see; null for a caller it must not know. */
  role: Role | null;
  /** A browser session (pages read it) rather than a token. */
  session: boolean;
  /** A session whose writes leave out the CSRF header. */
  noCsrf?: boolean;
  headers: Record<string, string>;
}

function tokenCaller(name: string, role: Role | null, token: string): Caller {
  return { name, role, session: false, headers: { authorization: `Bearer ${token}` } };
}

function sessionCaller(name: string, role: Role | null, api: PortalApi, csrf = true): Caller {
  const session = api.session ?? { cookie: "", csrf: "" };
  return {
    name,
    role,
    session: true,
    noCsrf: !csrf,
    headers: csrf
      ? { cookie: session.cookie, "x-csrf-token": session.csrf }
      : { cookie: session.cookie },
  };
}

function expectedFor(access: Access, caller: Caller, write: boolean): Outcome {
  if (write && caller.noCsrf === true) return "FORBIDDEN";
  if (access === "public") return "allowed";
  if (caller.role === null) return "UNAUTHORIZED";
  return hasRole(caller.role, access) ? "allowed" : "FORBIDDEN";
}

// ---- calls, counted

let calls = 0;
let stack: Stack;
let fx: Fixture;
let callers: Caller[];
let observer: PortalApi;
const watch = new FailureWatch();
const track = (fn: () => Promise<void>) => watch.track(fn);

async function callProcedure(
  procedure: string,
  type: string,
  input: unknown,
  headers: Record<string, string>,
): Promise<Reply> {
  calls++;
  const query = input === undefined ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`;
  const url = `${stack.url}/api/trpc/${procedure}`;
  const all = { ...headers, origin: stack.url };
  if (type === "subscription") return sseReply(`${url}${query}`, all);
  if (type === "query") return jsonReply(await fetch(`${url}${query}`, { headers: all }));
  return jsonReply(
    await fetch(url, {
      method: "POST",
      headers: { ...all, "content-type": "application/json" },
      body: input === undefined ? null : JSON.stringify(input),
    }),
  );
}

/** An SSE stream read in the background: its events, as they come. */
class SseStream {
  readonly events: { event: string; data: string }[] = [];
  private readonly abort = new AbortController();

  constructor(url: string, headers: Record<string, string>) {
    void this.read(url, headers).catch(() => undefined);
  }

  private async read(url: string, headers: Record<string, string>): Promise<void> {
    const response = await fetch(url, {
      headers: { ...headers, accept: "text/event-stream" },
      signal: this.abort.signal,
    });
    const reader = response.body?.getReader();
    if (reader === undefined) return;
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += Buffer.from(value).toString("utf8");
      const blocks = text.split("\n\n");
      text = blocks.pop() ?? "";
      for (const block of blocks) {
        if (block.startsWith(":")) continue;
        this.events.push({
          event: /^event: (.*)$/m.exec(block)?.[1] ?? "message",
          data: /^data: (.*)$/m.exec(block)?.[1] ?? "",
        });
      }
    }
  }

  async waitFor(what: string, match: (event: { event: string; data: string }) => boolean) {
    await waitFor(what, async () => Promise.resolve(this.events.some(match)), 15_000);
  }

  close(): void {
    this.abort.abort();
  }
}

/** Opens the console as `headers`; whether it opened, and whether typing reached the guest. */
async function consoleAs(
  headers: Record<string, string>,
  shouldType: boolean,
): Promise<{ status: number; typed: boolean }> {
  calls++;
  const url = `${stack.url.replace("http", "ws")}/api/v1/vms/${fx.vmId}/console`;
  const ws = new WebSocket(url, { headers: { origin: stack.url, ...headers } });
  let text = "";
  const errors: string[] = [];
  ws.on("message", (raw: Buffer) => {
    const frame = JSON.parse(raw.toString("utf8")) as {
      type: string;
      data?: string;
      message?: string;
    };
    if (frame.type === "data") text += Buffer.from(frame.data ?? "", "base64").toString();
    if (frame.type === "error") errors.push(frame.message ?? "");
  });
  const status = await new Promise<number>((resolve, reject) => {
    ws.once("open", () => resolve(101));
    ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    ws.once("error", reject);
  });
  if (status !== 101) {
    ws.terminate();
    return { status, typed: false };
  }
  try {
    await waitFor("the boot log on the console", async () =>
      Promise.resolve(text.includes("PROBE ready")),
    );
    const mark = `matrix-${randomBytes(3).toString("hex")}`;
    ws.send(JSON.stringify({ type: "input", data: `${mark}\r` }));
    // An operator's line reaches the guest's shell (an unknown command there); a viewer's is refused.
    await waitFor(
      "the guest's answer or the refusal",
      async () =>
        Promise.resolve(errors.length > 0 || text.includes(`ERR unknown command ${mark}`)),
      shouldType ? 15_000 : 5_000,
    );
    if (errors.length > 0) assert.deepEqual(errors, ["typing needs the operator role"]);
    return { status, typed: errors.length === 0 };
  } finally {
    ws.close();
  }
}

/** GETs a page as a browser would; what the browser ends up with. */
async function pageAs(url: string, headers: Record<string, string>): Promise<string> {
  calls++;
  const response = await fetch(`${stack.url}${url}`, { headers, redirect: "manual" });
  const location = response.headers.get("location");
  const body = await response.text();
  if (location !== null) return `redirect ${new URL(location, stack.url).pathname}`;
  // A redirect from inside a streamed page arrives in the body.
  const streamed = /NEXT_REDIRECT;[a-z]+;([^;"\\]+);/.exec(body)?.[1];
  if (streamed !== undefined) return `redirect ${streamed}`;
  if (response.status === 404) return "not found";
  if (response.status === 200 && /NEXT_HTTP_ERROR_FALLBACK;404/.test(body)) return "not found";
  return response.status === 200 ? "page" : `HTTP ${response.status}`;
}

/** Every page and route handler under src/app, as its URL pattern. */
function appRoutes(): { pages: string[]; handlers: string[] } {
  const appDir = path.join(path.dirname(new URL(import.meta.url).pathname), "..", "src", "app");
  const pages: string[] = [];
  const handlers: string[] = [];
  const walk = (dir: string, segments: string[]): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        // (group) folders do not show in the URL
        const next = /^\(.*\)$/.test(entry.name) ? segments : [...segments, entry.name];
        walk(path.join(dir, entry.name), next);
      } else if (/^page\.(tsx|ts|jsx|js)$/.test(entry.name)) {
        pages.push(`/${segments.join("/")}`);
      } else if (/^route\.(tsx|ts|jsx|js)$/.test(entry.name)) {
        handlers.push(`/${segments.join("/")}`);
      }
    }
  };
  assert.ok(existsSync(appDir), appDir);
  walk(appDir, []);
  return { pages: pages.sort(), handlers: handlers.sort() };
}

/** What the portal's state looks like to an admin: whatever a refused call could have changed. */
async function snapshot() {
  const [users, tokens, hosts, definitions, vms, templates, migrations, images] = await Promise.all(
    [
      observer.trpc.users.list.query(),
      observer.trpc.tokens.list.query(),
      observer.trpc.hosts.list.query(),
      observer.trpc.definitions.list.query(),
      observer.trpc.vms.list.query(),
      observer.trpc.templates.list.query(),
      observer.trpc.migrations.list.query(),
      observer.trpc.images.list.query({ hostId: fx.hostId }),
    ],
  );
  const devices = await observer.trpc.vms.devices.query({ id: fx.vmId });
  return {
    users: users.map((u) => `${u.username}:${u.role}`),
    tokens: tokens.map((t) => `${t.name}:${t.role}:${t.revokedAt === null ? "live" : "revoked"}`),
    hosts: hosts.map((h) => `${h.id}:${h.name}:${h.url}`),
    definitions: definitions.map((d) => `${d.id}:${d.name}:${JSON.stringify(d.config)}`),
    vms: vms.map((v) => `${v.id}:${v.name}:${v.state}`),
    templates: templates.map((t) => t.id),
    migrations: migrations.map((m) => m.id),
    images: images.map((i) => i.name),
    // What is plugged in where; not the guest driver's state, which changes as it boots.
    devices: JSON.stringify({
      disks: devices.disks,
      nics: devices.nics.map((n) => [n.slot, n.device, n.ifname, n.bridge, n.mac]),
    }),
  };
}

async function addUser(
  admin: PortalApi,
  role: Role,
  username = `matrix-${role}`,
): Promise<{ id: string; api: PortalApi }> {
  const password = `${username}-pass`;
  const { id } = await admin.trpc.users.create.mutate({ username, password, role });
  return { id, api: await signIn(stack.url, username, password) };
}

before(async () => {
  stack = await startStack();
  try {
    const adminSession = await signIn(stack.url, "admin", stack.adminPassword);
    const observerToken = await adminSession.trpc.tokens.create.mutate({
      name: "matrix-observer",
      role: "admin",
    });
    observer = new PortalApi(stack.url, observerToken.token);
    const [host] = await observer.trpc.hosts.list.query();
    const probe = (await observer.trpc.definitions.list.query()).find(
      (d) => d.name === "probe-guest",
    );
    assert.ok(host && probe, "the local host and the probe guest are offered");
    const vmId = (
      await observer.trpc.vms.create.mutate({ definitionId: probe.id, hostId: host.id })
    ).id;
    await waitFor("the VM to run", async () => {
      const got = await observer.trpc.vms.get.query({ id: vmId });
      return got.state === "running";
    });

    const viewer = await addUser(observer, "viewer");
    const operator = await addUser(observer, "operator");
    const admin = await addUser(observer, "admin");
    const noCsrf = await signIn(stack.url, "matrix-operator", "matrix-operator-pass");
    const tokenOf = async (api: PortalApi, name: string, role?: Role) =>
      (await api.trpc.tokens.create.mutate({ name, ...(role === undefined ? {} : { role }) }))
        .token;
    const revoked = await operator.api.trpc.tokens.create.mutate({ name: "matrix-revoked" });
    await operator.api.trpc.tokens.revoke.mutate({ id: revoked.id });
    // A user deleted while their session and token were out there.
    const gone = await addUser(observer, "operator", "matrix-gone");
    const goneToken = await tokenOf(gone.api, "matrix-gone");
    await observer.trpc.users.delete.mutate({ id: gone.id });
    // An operator's token whose user is a viewer now: it acts as a viewer.
    const demoted = await addUser(observer, "operator", "matrix-demoted");
    const demotedToken = await tokenOf(demoted.api, "matrix-demoted");
    await observer.trpc.users.setRole.mutate({ id: demoted.id, role: "viewer" });

    fx = {
      vmId,
      hostId: host.id,
      definitionId: probe.id,
      probeConfig: probe.config,
      userIds: { viewer: viewer.id, operator: operator.id, admin: admin.id },
      observerTokenId: observerToken.id,
    };
    const badSecret = randomBytes(32).toString("base64url");
    callers = [
      { name: "nobody", role: null, session: false, headers: {} },
      tokenCaller("bad token", null, `virga_${badSecret}`),
      {
        name: "bad session",
        role: null,
        session: true,
        headers: { cookie: `virga_session=${badSecret}; virga_csrf=x`, "x-csrf-token": "x" },
      },
      tokenCaller("revoked token", null, revoked.token),
      tokenCaller("token of a deleted user", null, goneToken),
      sessionCaller("session of a deleted user", null, gone.api),
      tokenCaller("operator's token, user demoted to viewer", "viewer", demotedToken),
      tokenCaller("viewer token", "viewer", await tokenOf(viewer.api, "matrix-viewer")),
      sessionCaller("viewer session", "viewer", viewer.api),
      tokenCaller("operator token", "operator", await tokenOf(operator.api, "matrix-operator")),
      sessionCaller("operator session", "operator", operator.api),
      sessionCaller("operator session without CSRF", "operator", noCsrf, false),
      tokenCaller("admin token", "admin", await tokenOf(admin.api, "matrix-admin")),
      sessionCaller("admin session", "admin", admin.api),
      tokenCaller(
        "admin's viewer-role token",
        "viewer",
        await tokenOf(admin.api, "matrix-admin-as-viewer", "viewer"),
      ),
    ];
  } catch (error) {
    watch.fail();
    throw error;
  }
});

after(async () => {
  // The figure the issue's note quotes.
  const procedures = routerProcedures(appRouter).size;
  const pages = Object.keys(PAGES).length;
  const n = callers.length;
  console.log(
    `auth matrix (portal): ${procedures} tRPC procedures × ${n} callers = ${procedures * n}; ` +
      `API routes (health, OpenAPI, unknown, QMP gateway and vms.qmp × 3 commands) × ${n} = ${9 * n}; ` +
      `console websocket × ${n + 1}, 4 other upgrade paths; ${pages} pages × ${n} = ${pages * n}; ` +
      `${calls} calls made`,
  );
  await watch.stop(stack);
});

describe("the auth matrix of the portal", () => {
  it(
    "lists every procedure, route and page of the portal, and nothing else",
    track(() => {
      assertCoversRouter(routerProcedures(appRouter), PROCEDURES);
      assert.deepEqual(Object.keys(API_ROUTES).sort(), Object.keys(API_ROUTE_ACCESS).sort());
      assert.deepEqual(Object.keys(SOCKET_ROUTES).sort(), Object.keys(SOCKET_ROUTE_ACCESS).sort());
      const { pages, handlers } = appRoutes();
      assert.deepEqual(pages, Object.keys(PAGES).sort(), "pages of src/app against the table");
      assert.deepEqual(handlers, [], "route handlers (route.ts) need a row in the matrix");
      return Promise.resolve();
    }),
  );

  it(
    "each caller is who the portal thinks it is (auth.me)",
    track(async () => {
      for (const caller of callers) {
        calls++;
        const response = await fetch(`${stack.url}/api/trpc/auth.me`, { headers: caller.headers });
        const body = (await response.json()) as { result?: { data: { role: string } | null } };
        assert.equal(body.result?.data?.role ?? null, caller.role, caller.name);
      }
    }),
  );

  it(
    "the API routes: health and the OpenAPI document for anyone, raw QMP (gateway, vms.qmp) by role and command",
    track(async () => {
      const before = await snapshot();
      const wrong: string[] = [];
      for (const caller of callers) {
        for (const [route, url] of [
          ["health", "/api/health"],
          ["openapi", "/api/v1/openapi.json"],
        ] as const) {
          calls++;
          const response = await fetch(`${stack.url}${url}`, { headers: caller.headers });
          const access = API_ROUTE_ACCESS[route];
          assert.equal(access, "public");
          if (response.status !== 200) wrong.push(`${route} as ${caller.name}: ${response.status}`);
        }
        calls++;
        const unknown = await fetch(`${stack.url}/api/v1/nothing-here`, {
          headers: caller.headers,
        });
        if (unknown.status !== 404)
          wrong.push(`unknown API route as ${caller.name}: ${unknown.status}`);
        // The gateway: a viewer's query, an operator's command (a no-op on a running VM),
        // and one no role may send.
        // The same through tRPC's vms.qmp, which the QMP console uses.
        const fronts = [
          ["gateway", `/api/v1/vms/${fx.vmId}/qmp`, API_ROUTE_ACCESS.gateway as Role, {}],
          [
            "vms.qmp",
            "/api/trpc/vms.qmp",
            PROCEDURES["vms.qmp"]?.access ?? "admin",
            { id: fx.vmId },
          ],
        ] as const;
        for (const [execute, needs] of [
          ["query-status", "viewer"],
          ["cont", "operator"],
          ["human-monitor-command", null],
        ] as const)
          for (const [front, url, access, extra] of fronts) {
            calls++;
            const response = await fetch(`${stack.url}${url}`, {
              method: "POST",
              headers: { ...caller.headers, origin: stack.url, "content-type": "application/json" },
              body: JSON.stringify({ ...extra, execute }),
            });
            const reply = await jsonReply(response);
            const routeLevel = expectedFor(access, caller, true);
            const expected: Outcome =
              routeLevel !== "allowed"
                ? routeLevel
                : needs !== null && caller.role !== null && hasRole(caller.role, needs)
                  ? "allowed"
                  : "FORBIDDEN";
            const got = outcomeOf(reply);
            if (got !== expected || (expected === "allowed" && reply.status !== 200)) {
              wrong.push(
                `${front} ${execute} as ${caller.name}: expected ${expected}, got ${reply.status} ${reply.message}`,
              );
            }
          }
      }
      // A batch is checked call by call: the admin-only call in it is refused.
      const viewer = callers.find((c) => c.name === "viewer token");
      assert.ok(viewer);
      calls++;
      const batch = await fetch(
        `${stack.url}/api/trpc/vms.list,users.list?batch=1&input=${encodeURIComponent("{}")}`,
        { headers: viewer.headers },
      );
      const answers = (await batch.json()) as {
        result?: unknown;
        error?: { data?: { code?: string } };
      }[];
      assert.ok(answers[0]?.result !== undefined, "vms.list in a batch");
      assert.equal(answers[1]?.error?.data?.code, "FORBIDDEN", "users.list in a batch");
      assert.deepEqual(wrong, []);
      assert.deepEqual(await snapshot(), before, "no refused call changed anything");
      assert.equal((await observer.trpc.vms.get.query({ id: fx.vmId })).state, "running");
    }),
  );

  it(
    "the console websocket: refused without a valid credential or from another site; only operators type",
    track(async () => {
      const wrong: string[] = [];
      for (const caller of callers) {
        const expected = expectedFor(SOCKET_ROUTE_ACCESS.console, caller, false);
        const got = await consoleAs(
          caller.headers,
          caller.role !== null && hasRole(caller.role, "operator"),
        );
        const outcome: Outcome =
          got.status === 401 ? "UNAUTHORIZED" : got.status === 403 ? "FORBIDDEN" : "allowed";
        if (outcome !== expected)
          wrong.push(`console as ${caller.name}: expected ${expected}, got ${got.status}`);
        else if (
          outcome === "allowed" &&
          got.typed !== (caller.role !== null && hasRole(caller.role, "operator"))
        ) {
          wrong.push(`console as ${caller.name}: typing ${got.typed ? "accepted" : "refused"}`);
        }
      }
      // A browser on another site sends the cookie too; the origin check refuses it.
      const session = callers.find((c) => c.name === "operator session");
      assert.ok(session);
      const crossSite = await consoleAs(
        { ...session.headers, origin: "http://evil.example" },
        false,
      );
      if (crossSite.status !== 403) wrong.push(`console from another site: ${crossSite.status}`);
      // No other websocket: an upgrade anywhere else is dropped, whoever asks.
      // (/_next/ went to Next, which in production never answered: the socket hung open.)
      for (const route of [
        "/api/v1/vms/x/other",
        "/api/trpc/vms.watch",
        "/",
        "/_next/webpack-hmr",
      ]) {
        calls++;
        const ws = new WebSocket(`${stack.url.replace("http", "ws")}${route}`, {
          headers: { ...session.headers, origin: stack.url },
          handshakeTimeout: 5000,
        });
        const answer = await new Promise<string>((resolve) => {
          ws.once("open", () => resolve("opened"));
          ws.once("unexpected-response", (_req, res) => resolve(`HTTP ${res.statusCode ?? 0}`));
          ws.once("error", (error) => resolve(error.message));
        });
        ws.terminate();
        // Dropped at once: not opened, and not left hanging until the client gives up.
        if (answer !== "socket hang up") wrong.push(`websocket on ${route}: ${answer}`);
      }
      assert.deepEqual(wrong, []);
    }),
  );

  it(
    "a live subscription (vms.watch) ends once its token is revoked or its session signed out",
    track(async () => {
      const owner = await signIn(stack.url, "matrix-viewer", "matrix-viewer-pass");
      const token = await owner.trpc.tokens.create.mutate({ name: "matrix-watch" });
      const session = await signIn(stack.url, "matrix-viewer", "matrix-viewer-pass");
      const ends: [string, Record<string, string>, () => Promise<unknown>][] = [
        [
          "a revoked token",
          { authorization: `Bearer ${token.token}` },
          () => owner.trpc.tokens.revoke.mutate({ id: token.id }),
        ],
        [
          "a signed-out session",
          { cookie: session.session?.cookie ?? "" },
          () => session.trpc.auth.signOut.mutate(),
        ],
      ];
      for (const [what, headers, end] of ends) {
        calls++;
        const stream = new SseStream(`${stack.url}/api/trpc/vms.watch`, headers);
        await stream.waitFor("the subscription to start", (e) => e.event === "connected");
        await end();
        // What the VM does next must not reach a caller the portal no longer knows.
        await observer.trpc.vms.pause.mutate({ id: fx.vmId });
        await observer.trpc.vms.resume.mutate({ id: fx.vmId });
        await stream.waitFor(
          `the stream of ${what} to end with UNAUTHORIZED`,
          (e) => e.event === "serialized-error" && /"UNAUTHORIZED"/.test(e.data),
        );
        stream.close();
      }
    }),
  );

  it(
    "every page: signed-out browsers and tokens go to sign-in, each role sees what it may",
    track(async () => {
      const wrong: string[] = [];
      for (const [pattern, rule] of Object.entries(PAGES)) {
        for (const caller of callers) {
          // Pages read the session cookie only: a token is nobody there.
          const role = caller.session ? caller.role : null;
          let expected: PageOutcome;
          if (rule.access === "public") expected = role === null ? "page" : "redirect /vms";
          else if (role === null) expected = "redirect /sign-in";
          else expected = hasRole(role, rule.access) ? (rule.shown ?? "page") : "redirect /vms";
          const got = await pageAs(rule.url(fx), caller.headers);
          if (got !== expected)
            wrong.push(`${pattern} as ${caller.name}: expected ${expected}, got ${got}`);
        }
      }
      assert.deepEqual(wrong, []);
    }),
  );

  it(
    "every tRPC procedure refuses exactly the callers the table refuses, and nothing changes",
    track(async () => {
      const before = await snapshot();
      const types = routerProcedures(appRouter);
      // Last: a session that signs out is of no use to the rows after it.
      const order = [...types.keys()].sort((a, b) =>
        a === "auth.signOut" ? 1 : b === "auth.signOut" ? -1 : a.localeCompare(b),
      );
      const wrong: string[] = [];
      for (const name of order) {
        const rule = PROCEDURES[name];
        const type = types.get(name) ?? "";
        assert.ok(rule, name);
        for (const caller of callers) {
          const expected = expectedFor(rule.access, caller, type === "mutation");
          const input =
            expected === "allowed" ? ("inert" in rule ? rule.inert : {}) : rule.harmful?.(fx);
          const reply = await callProcedure(name, type, input, caller.headers);
          const got = outcomeOf(reply);
          const where = `${name} (${type}) as ${caller.name}: expected ${expected}, got HTTP ${reply.status} ${reply.code ?? ""} ${reply.message}`;
          if (got !== expected) {
            wrong.push(where);
            continue;
          }
          // Refusals say why, and are the auth check's, not some later one's.
          if (expected === "UNAUTHORIZED") {
            assert.match(reply.message, /^sign in or send an API token$/, where);
          } else if (expected === "FORBIDDEN") {
            assert.match(
              reply.message,
              caller.noCsrf === true && type === "mutation"
                ? /^CSRF check failed/
                : new RegExp(`^needs the ${rule.access} role \\(you are ${caller.role ?? ""}\\)$`),
              where,
            );
          } else if (type === "mutation" && name !== "auth.signOut") {
            // The inert input must be refused for what it is, or find nothing.
            assert.ok(
              reply.status >= 400,
              `${where}: an allowed write with the inert input must not succeed`,
            );
          }
        }
      }
      assert.deepEqual(wrong, [], "calls whose outcome differs from the table");
      assert.deepEqual(await snapshot(), before, "no refused call changed anything");
      const vm = await observer.trpc.vms.get.query({ id: fx.vmId });
      assert.equal(vm.state, "running");
      // The sessions that signed out are gone; the one refused by CSRF is not.
      for (const caller of callers.filter((c) => c.session && c.role !== null)) {
        calls++;
        const me = await fetch(`${stack.url}/api/trpc/auth.me`, { headers: caller.headers });
        const body = (await me.json()) as { result?: { data: unknown } };
        assert.equal(body.result?.data === null, caller.noCsrf !== true, caller.name);
      }
    }),
  );
  it(
    "no answer to any caller carries a secret: passwords, hashes, API tokens, sessions, virgad's tokens",
    track(async () => {
      const secrets = [
        stack.adminPassword,
        "intruder-pass-1",
        ...["viewer", "operator", "admin", "gone", "demoted"].map((who) => `matrix-${who}-pass`),
        "scrypt$",
        readFileSync(path.join(stack.dataDir, "host", "token"), "utf8").trim(),
        readFileSync(path.join(stack.dataDir, "host", "token.read"), "utf8").trim(),
        ...callers.flatMap((caller) => [
          ...(/^Bearer (.+)$/.exec(caller.headers.authorization ?? "")?.slice(1) ?? []),
          ...(/virga_session=([^;]+)/.exec(caller.headers.cookie ?? "")?.slice(1) ?? []),
        ]),
      ];
      // The matrix's refused writes carried passwords; the audit log shows them to operators.
      const readers = [
        ...callers.filter((c) => c.role !== null && !c.session),
        { name: "observer (admin)", role: "admin", session: false, headers: observer.headers() },
      ];
      const types = routerProcedures(appRouter);
      const leaks: string[] = [];
      for (const [name, type] of types) {
        if (type !== "query") continue;
        for (const reader of readers) {
          calls++;
          const input = PROCEDURES[name]?.harmful?.(fx);
          const query =
            input === undefined ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`;
          const response = await fetch(`${stack.url}/api/trpc/${name}${query}`, {
            headers: reader.headers,
          });
          const text = await response.text();
          for (const secret of secrets) {
            if (text.includes(secret))
              leaks.push(`${name} as ${reader.name}: ${secret.slice(0, 12)}…`);
          }
        }
      }
      assert.deepEqual(leaks, []);
    }),
  );
});
