// Between the portal and its hosts (docs/security.md): the portal sends a
// host's token only in the Authorization header (a recording proxy in front
// of a second virgad sees every request line and upgrade the portal makes),
// keeps it sealed in the database under a key file 0600, passes on a
// read-only token's refusals by name, and reaches a virgad listening beyond
// loopback over TLS only through the certificate the admin pinned.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createPrismaClient } from "@virga/prisma";
import WebSocket from "ws";
import {
  errorOf,
  FailureWatch,
  killVms,
  REPO_ROOT,
  startStack,
  statusOf,
  tokenApi,
  waitFor,
  type PortalApi,
  type Stack,
} from "./harness";

const VIRGAD = path.join(REPO_ROOT, "apps", "host", "bin", "virgad.js");

/** A virgad of its own (not the one `npm start` runs), on its own run directory. */
class ExtraVirgad {
  stdout = "";
  port = 0;
  private child: ChildProcess | null = null;

  constructor(
    readonly runDir: string,
    readonly address: string,
  ) {}

  async start(port = 0): Promise<this> {
    const child = spawn(
      process.execPath,
      [VIRGAD, "--listen", `${this.address}:${port}`, "--run-dir", this.runDir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    this.stdout = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (this.stdout += text));
    await waitFor("virgad to listen", () =>
      Promise.resolve(/listening on \S+:\d+ /.test(this.stdout) || child.exitCode !== null),
    );
    const match = /listening on \S+:(\d+) /.exec(this.stdout);
    assert.ok(match, `virgad did not start: ${this.stdout}`);
    this.port = Number(match[1]);
    return this;
  }

  get fingerprint(): string {
    return /certificate SHA-256 fingerprint (\S+)/.exec(this.stdout)?.[1] ?? "";
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

/** Output of `virgad --print-token=<scope>` for a run directory. */
async function printedToken(runDir: string, scope: "full" | "read"): Promise<string> {
  const child = spawn(process.execPath, [VIRGAD, `--print-token=${scope}`, "--run-dir", runDir]);
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (out += text));
  await new Promise((resolve) => child.once("exit", resolve));
  return out.trim();
}

interface RequestHead {
  line: string;
  headers: Record<string, string>;
}

/** A TCP relay to `port` that records the head of every HTTP request passing through. */
function recordingProxy(
  port: number,
): Promise<{ server: Server; port: number; heads: RequestHead[] }> {
  const heads: RequestHead[] = [];
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port });
    let seen = "";
    client.on("data", (chunk: Buffer) => {
      // Websocket frames from a client are masked, so after an upgrade nothing parses as a head.
      seen += chunk.toString("latin1");
      for (;;) {
        const end = seen.indexOf("\r\n\r\n");
        const match = /(?:^|\n)([A-Z]+ \S+ HTTP\/1\.1)\r\n/.exec(seen);
        if (match === null || end < 0 || end < match.index) break;
        const block = seen.slice(match.index + match[0].length, end);
        const headers: Record<string, string> = {};
        for (const row of block.split("\r\n")) {
          const colon = row.indexOf(":");
          if (colon > 0) headers[row.slice(0, colon).toLowerCase()] = row.slice(colon + 1).trim();
        }
        heads.push({ line: match[1] ?? "", headers });
        seen = seen.slice(end + 4);
      }
    });
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({
        server,
        port: typeof address === "object" && address !== null ? address.port : 0,
        heads,
      });
    });
  });
}

/** What a VM's console shows through the portal's websocket, up to "PROBE ready". */
function portalConsole(vmId: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const ws = new WebSocket(`${stack.url.replace("http", "ws")}/api/v1/vms/${vmId}/console`, {
      headers: { authorization: `Bearer ${operator.token ?? ""}` },
    });
    let seen = "";
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`no PROBE ready on the console; got ${JSON.stringify(seen)}`));
    }, 60_000);
    ws.on("message", (raw: Buffer) => {
      const frame = JSON.parse(raw.toString("utf8")) as { type: string; data?: string };
      if (frame.type === "data") seen += Buffer.from(frame.data ?? "", "base64").toString();
      if (seen.includes("PROBE ready")) {
        clearTimeout(timer);
        ws.close();
        resolve(seen);
      }
    });
    ws.on("error", reject);
  });
}

let stack: Stack;
let admin: PortalApi;
let operator: PortalApi;
const scratch = mkdtempSync(path.join(tmpdir(), "virga-host-creds-"));
const plain = new ExtraVirgad(path.join(scratch, "plain"), "127.0.0.1");
const remote = new ExtraVirgad(path.join(scratch, "remote"), "0.0.0.0");
let proxy: Awaited<ReturnType<typeof recordingProxy>>;
const watch = new FailureWatch();

before(async () => {
  stack = await startStack();
  try {
    admin = await tokenApi(stack, "admin", "ci-admin");
    operator = await tokenApi(stack, "operator", "ci-operator");
    await plain.start();
    proxy = await recordingProxy(plain.port);
  } catch (error) {
    watch.fail();
    throw error;
  }
});

after(async () => {
  proxy.server.close();
  await plain.stop();
  await remote.stop();
  killVms(plain.runDir);
  killVms(remote.runDir);
  rmSync(scratch, { recursive: true, force: true });
  await watch.stop(stack);
});

const track = (fn: () => Promise<void>) => watch.track(fn);

describe("host credentials", () => {
  it(
    "sends the token only in headers, never in a URL, and stores it sealed under a 0600 key",
    track(async () => {
      const token = await printedToken(plain.runDir, "full");
      const added = await admin.trpc.hosts.add.mutate({
        name: "watched",
        url: `http://127.0.0.1:${proxy.port}`,
        token,
      });
      assert.equal(added.scope, "full");
      assert.equal(added.fingerprint, null);
      const probe = (await operator.trpc.definitions.list.query()).find(
        (d) => d.name === "probe-guest",
      );
      assert.ok(probe);
      const vm = await operator.trpc.vms.create.mutate({
        definitionId: probe.id,
        hostId: added.id,
      });
      // The console websocket through the portal makes the portal subscribe to virgad's console.
      const text = await portalConsole(vm.id);
      assert.match(text, /PROBE ready/);
      await waitFor("the portal to see the VM run", async () => {
        const row = await operator.trpc.vms.get.query({ id: vm.id });
        return row.state === "running";
      });

      const upgrades = proxy.heads.filter((head) => head.headers.upgrade === "websocket");
      assert.ok(upgrades.length >= 1, `no websocket upgrade seen: ${JSON.stringify(proxy.heads)}`);
      assert.ok(proxy.heads.some((head) => head.line.startsWith("POST /trpc/vm.create")));
      for (const head of proxy.heads) {
        assert.ok(!head.line.includes(token), `the token is in a URL: ${head.line}`);
        assert.doesNotMatch(head.line, /token=/i, head.line);
        assert.equal(head.headers.authorization, `Bearer ${token}`, head.line);
      }

      const db = createPrismaClient(`file:${path.join(stack.dataDir, "portal.db")}`);
      try {
        const rows = await db.host.findMany();
        assert.equal(rows.length, 2);
        for (const row of rows) {
          assert.match(row.token, /^v1:[A-Za-z0-9_-]+$/, row.name);
          assert.ok(!row.token.includes(token), `${row.name}'s token is stored in clear`);
          assert.ok(!Buffer.from(row.token.slice(3), "base64url").includes(token));
        }
      } finally {
        await db.$disconnect();
      }
      assert.equal(statSync(path.join(stack.dataDir, "secret.key")).mode & 0o777, 0o600);
      assert.ok(!JSON.stringify(await admin.trpc.hosts.list.query()).includes(token));
    }),
  );

  it(
    "a read-only token lets the portal watch the host; its actions are refused 403 by scope",
    track(async () => {
      const added = await admin.trpc.hosts.add.mutate({
        name: "reader",
        url: `http://127.0.0.1:${plain.port}`,
        token: await printedToken(plain.runDir, "read"),
      });
      assert.equal(added.scope, "read");
      const host = await operator.trpc.hosts.get.query({ id: added.id });
      assert.equal(host.error, null, "the host answers a read-only token");
      assert.equal(host.info.vms.length, 1);
      let vmId = "";
      await waitFor("the reader's VM to be listed, running", async () => {
        const rows = await operator.trpc.vms.list.query();
        const row = rows.find((r) => r.hostName === "reader");
        vmId = row?.id ?? "";
        return row?.state === "running";
      });
      for (const action of ["pause", "quit", "kill"] as const) {
        const refused = await statusOf(operator.trpc.vms[action].mutate({ id: vmId }));
        assert.equal(refused.status, 403, `${action}: ${refused.message}`);
        assert.match(
          refused.message,
          new RegExp(
            `host 'reader' was added with a read-only token: vm\\.${action} needs a token of scope 'full'; this token's scope is 'read'`,
          ),
        );
      }
      assert.equal((await operator.trpc.vms.get.query({ id: vmId })).state, "running");
    }),
  );

  it(
    "reaches a virgad beyond loopback over TLS through the pinned certificate only",
    track(async () => {
      await remote.start();
      assert.match(remote.stdout, /listening on https:\/\/0\.0\.0\.0:/);
      const pin = remote.fingerprint;
      assert.match(pin, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      const input = {
        name: "remote",
        url: `https://127.0.0.1:${remote.port}`,
        token: await printedToken(remote.runDir, "full"),
      };

      const unconfirmed = await admin.mutate("hosts.add", input);
      assert.equal(unconfirmed.status, 400);
      assert.equal(
        errorOf(unconfirmed).message.split(";")[0],
        `fingerprint: the host presents a certificate with SHA-256 fingerprint ${pin}`,
      );
      const wrong = pin.replace(/^../, pin.startsWith("00") ? "11" : "00");
      const mismatched = await admin.mutate("hosts.add", { ...input, fingerprint: wrong });
      assert.equal(mismatched.status, 400);
      assert.match(
        errorOf(mismatched).message,
        new RegExp(`^fingerprint: the host presents SHA-256 ${pin}, not ${wrong}; not added`),
      );
      const plainHttp = await admin.mutate("hosts.add", {
        ...input,
        url: `http://127.0.0.1:${remote.port}`,
      });
      assert.equal(plainHttp.status, 400, "virgad beyond loopback does not speak plain HTTP");

      const added = await admin.trpc.hosts.add.mutate({
        ...input,
        fingerprint: pin.replace(/:/g, "").toLowerCase(),
      });
      assert.equal(added.fingerprint, pin);
      assert.equal(added.scope, "full");
      const reached = await operator.trpc.hosts.get.query({ id: added.id });
      assert.equal(reached.error, null, "the pinned host answers");
      assert.equal(reached.info.vms.length, 0);
      // The console crosses a wss:// websocket, pinned and with the token in its header.
      const probe = (await operator.trpc.definitions.list.query()).find(
        (d) => d.name === "probe-guest",
      );
      assert.ok(probe);
      const vm = await operator.trpc.vms.create.mutate({
        definitionId: probe.id,
        hostId: added.id,
      });
      assert.match(await portalConsole(vm.id), /PROBE ready/);
      await operator.trpc.vms.kill.mutate({ id: vm.id });

      // Another certificate on the same address (another machine, or a man in the middle).
      await remote.stop();
      rmSync(path.join(remote.runDir, "tls"), { recursive: true, force: true });
      await remote.start(remote.port);
      assert.notEqual(remote.fingerprint, pin);
      // Why is for admins; an operator is told the host is unreachable.
      const seen = await operator.trpc.hosts.get.query({ id: added.id });
      assert.equal(seen.info, null);
      assert.match(seen.error, /^host 'remote' is unreachable/);
      const refused = await admin.trpc.hosts.get.query({ id: added.id });
      assert.equal(refused.info, null);
      assert.match(
        refused.error,
        new RegExp(
          `host 'remote' unreachable: .*certificate \\(SHA-256 ${remote.fingerprint}\\) is not the pinned one \\(${pin}\\)`,
        ),
      );
    }),
  );
});
