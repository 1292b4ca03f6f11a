// hosts.add and what the Hosts page tells each role, against a real portal
// and a real virgad: only http(s) URLs, no redirect followed, and why a host
// cannot be reached shown to admins only.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  errorOf,
  FailureWatch,
  PortalApi,
  REPO_ROOT,
  startStack,
  statusOf,
  tokenApi,
  waitFor,
  type Stack,
} from "./harness";

let stack: Stack;
let admin: PortalApi;
let viewer: PortalApi;
const watch = new FailureWatch();
const track = (fn: () => Promise<void>) => watch.track(fn);

before(async () => {
  stack = await startStack();
  admin = await tokenApi(stack, "admin", "ci-admin");
  viewer = await tokenApi(stack, "viewer", "ci-viewer");
});

after(async () => {
  await watch.stop(stack);
});

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(
        `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`,
      );
    });
  });
}

function virgadToken(): string {
  const run = spawnSync(
    process.execPath,
    [
      path.join(REPO_ROOT, "apps", "host", "bin", "virgad.js"),
      "--print-token",
      "--run-dir",
      path.join(stack.dataDir, "host"),
    ],
    { encoding: "utf8" },
  );
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim();
}

describe("hosts.add", () => {
  it(
    "takes only http and https URLs, naming the field",
    track(async () => {
      for (const url of [
        "file:///etc/passwd",
        "ftp://127.0.0.1:21",
        "ws://127.0.0.1:7788",
        "javascript:alert(1)",
        "unix:/run/virgad.sock",
      ]) {
        const reply = await admin.mutate("hosts.add", { name: "other", url, token: "x" });
        assert.equal(reply.status, 400, url);
        assert.match(errorOf(reply).message, /^url: an http:\/\/ or https:\/\/ URL/, url);
      }
    }),
  );

  it(
    "refuses a redirect instead of following it, and says so",
    track(async () => {
      let followed = 0;
      const target = createHttpServer((_req, res) => {
        followed += 1;
        res.writeHead(404).end();
      });
      const targetUrl = await listen(target);
      const redirect = createHttpServer((req, res) => {
        res.writeHead(307, { location: `${targetUrl}${req.url ?? "/"}` }).end();
      });
      const redirectUrl = await listen(redirect);
      try {
        const reply = await admin.mutate("hosts.add", {
          name: "redirected",
          url: redirectUrl,
          token: "x",
        });
        assert.equal(reply.status, 400);
        assert.match(
          errorOf(reply).message,
          /^url: host 'redirected' unreachable: it answered with a redirect \(HTTP 307 to http:\/\/127\.0\.0\.1:\d+\/trpc\/host\.\w+.*\), which the portal does not follow/,
        );
        assert.equal(followed, 0, "the portal followed the redirect");
        const hosts = await admin.trpc.hosts.list.query();
        assert.ok(!hosts.some((h) => h.name === "redirected"));
      } finally {
        redirect.close();
        target.close();
      }
    }),
  );
});

describe("an unreachable host", () => {
  it(
    "admins see why; viewers only that it is unreachable, on the Hosts page and in errors",
    track(async () => {
      // A relay to the real virgad, so the host can be added and then cut off.
      const sockets = new Set<Socket>();
      const relay = createServer((client) => {
        const upstream = connect(Number(new URL(stack.hostUrl).port), "127.0.0.1");
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on("error", () => socket.destroy());
          socket.on("close", () => sockets.delete(socket));
        }
        client.pipe(upstream).pipe(client);
      });
      const relayUrl = await listen(relay);
      const added = await admin.trpc.hosts.add.mutate({
        name: "relayed",
        url: relayUrl,
        token: virgadToken(),
      });
      await new Promise<void>((resolve) => {
        relay.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });

      const port = new URL(relayUrl).port;
      const adminView = async () =>
        (await admin.trpc.hosts.list.query()).find((h) => h.name === "relayed");
      const seen = await adminView();
      assert.ok(seen !== undefined);
      assert.equal(seen.info, null);
      assert.match(
        seen.error,
        new RegExp(
          `^host 'relayed' unreachable: fetch failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`,
        ),
      );
      // The watcher records why too, once it has tried.
      await waitFor(
        "the watcher to record the failure",
        async () => ((await adminView())?.lastError ?? null) !== null,
        45_000,
      );

      const summary = "host 'relayed' is unreachable (an admin sees why on the Hosts page)";
      const listed = (await viewer.trpc.hosts.list.query()).find((h) => h.name === "relayed");
      assert.ok(listed !== undefined);
      const got = await viewer.trpc.hosts.get.query({ id: added.id });
      for (const [what, shown] of [
        ["list: error", listed.error],
        ["list: lastError", listed.lastError],
        ["get: error", got.error],
        ["get: lastError", got.lastError],
      ]) {
        assert.equal(shown, summary, `${what}: a viewer saw '${shown}' (relay port ${port})`);
      }
      assert.equal(listed.info, null);

      const viewerCall = await statusOf(viewer.trpc.images.list.query({ hostId: added.id }));
      assert.equal(viewerCall.status, 502);
      assert.equal(viewerCall.message, summary);
      const adminCall = await statusOf(admin.trpc.images.list.query({ hostId: added.id }));
      assert.equal(adminCall.status, 502);
      assert.match(adminCall.message, /^host 'relayed' unreachable: .*ECONNREFUSED/);

      await admin.trpc.hosts.remove.mutate({ id: added.id });
    }),
  );
});
