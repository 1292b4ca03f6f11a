// virgad's front door: no token → 401 on every route and on the websocket,
// a token only in the Authorization header; a "read" token queries and
// watches but is refused every mutation by name (403); beyond loopback only
// TLS with virgad's own certificate; configs naming files outside the image directories (directly, through
// `..`, or through a symlink) are refused, and nothing is left behind.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import https from "node:https";
import path from "node:path";
import { describe, it } from "node:test";
import { TRPCClientError } from "@trpc/client";
import WebSocket from "ws";
import { appRouter } from "../../src/daemon/router";
import { ConsoleWatcher, EventWatcher, refused, withVirgad, type VirgadProcess } from "./harness";

const TEST = { timeout: 30000 };

/** Opens a websocket; resolves with the upgrade's HTTP status (101 when it opened). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => {
      ws.terminate();
      resolve(101);
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", (error) => {
      reject(error);
    });
  });
}

/** Every mutation of virgad's router, read from the router so a new one cannot be missed. */
function mutationPaths(): string[] {
  const procedures = appRouter._def.procedures as unknown as Record<
    string,
    { _def: { type: string } }
  >;
  return Object.entries(procedures)
    .filter(([, procedure]) => procedure._def.type === "mutation")
    .map(([name]) => name);
}

/** A GET over TLS trusting only `cert`, accepted only when its fingerprint is `pin`. */
function pinnedGet(
  url: string,
  token: string,
  cert: string,
  pin: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      url,
      {
        headers: { authorization: `Bearer ${token}` },
        // A fresh connection each time: a resumed TLS session skips checkServerIdentity.
        agent: false,
        ca: cert,
        checkServerIdentity: (_host, peer) =>
          peer.fingerprint256 === pin
            ? undefined
            : new Error(`pin mismatch: ${peer.fingerprint256}`),
      },
      (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        response.on("end", () => {
          resolve({ status: response.statusCode ?? 0, body });
        });
      },
    );
    request.on("error", reject);
  });
}

async function status(virgad: VirgadProcess, route: string, init: RequestInit = {}) {
  const response = await fetch(`${virgad.url}${route}`, init);
  return { status: response.status, auth: response.headers.get("www-authenticate") };
}

describe("virgad auth and confinement", () => {
  it("answers 401 without the right token, on every route and on the websocket", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const routes: [string, RequestInit][] = [
        ["/trpc/vm.list", {}],
        ["/trpc/host.info", {}],
        [`/trpc/vm.get?input=${encodeURIComponent(JSON.stringify({ id: "x" }))}`, {}],
        ["/trpc/vm.create", { method: "POST", body: "{}" }],
        ["/trpc/vm.start", { method: "POST", body: '{"id":"x"}' }],
        ["/trpc/vm.qmp", { method: "POST", body: '{"id":"x","execute":"quit"}' }],
        ["/trpc/vm.list,host.info?batch=1", {}],
        ["/", {}],
        ["/anything", {}],
      ];
      const wrong = ["", "Bearer", `Bearer ${"0".repeat(64)}`, `Basic ${virgad.token}`];
      for (const [route, init] of routes) {
        assert.deepEqual(await status(virgad, route, init), { status: 401, auth: "Bearer" }, route);
        for (const authorization of wrong) {
          const got = await status(virgad, route, { ...init, headers: { authorization } });
          assert.equal(got.status, 401, `${route} with '${authorization}'`);
        }
      }
      // A token in the URL counts for nothing, on requests and on upgrades alike.
      assert.equal((await status(virgad, `/trpc/vm.list?token=${virgad.token}`)).status, 401);
      const good = { authorization: `Bearer ${virgad.token}` };
      assert.equal((await status(virgad, "/trpc/vm.list", { headers: good })).status, 200);
      assert.equal((await status(virgad, "/nope", { headers: good })).status, 404);

      const ws = `ws://127.0.0.1:${virgad.port}/trpc`;
      assert.equal(await upgradeStatus(ws), 401);
      assert.equal(await upgradeStatus(`${ws}?token=${"1".repeat(64)}`), 401);
      assert.equal(await upgradeStatus(ws, { authorization: "Bearer nope" }), 401);
      assert.equal(await upgradeStatus(ws, good), 101);
      assert.equal(await upgradeStatus(`${ws}?token=${virgad.token}`), 401);
      const read = { authorization: `Bearer ${virgad.readToken}` };
      assert.equal(await upgradeStatus(ws, read), 101);
    }),
  );

  it(
    "gives a read token queries and subscriptions, and refuses it every mutation with 403",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        for (const file of ["token", "token.read"]) {
          assert.equal(statSync(path.join(fx.runDir, file)).mode & 0o777, 0o600, file);
        }
        assert.notEqual(virgad.readToken, virgad.token);
        const full = virgad.client();
        const reader = virgad.client(virgad.readToken);
        assert.deepEqual(await reader.host.whoami.query(), { scope: "read" });
        assert.deepEqual(await full.host.whoami.query(), { scope: "full" });

        const events = new EventWatcher(reader);
        await events.waitStarted();
        await full.vm.create.mutate({ id: "seen", config: fx.probeConfig() });
        const output = new ConsoleWatcher(reader, "seen");
        await full.vm.start.mutate({ id: "seen" });
        fx.track((await full.vm.get.query({ id: "seen" })).pid);
        await output.waitFor(/PROBE ready/);
        await events.waitFor(
          () => events.of("seen").includes("VM_STATE:running"),
          "the reader to see the VM run",
        );
        assert.deepEqual(
          (await reader.vm.list.query()).map((vm) => vm.id),
          ["seen"],
        );
        assert.equal((await reader.vm.get.query({ id: "seen" })).state, "running");
        await reader.host.info.query();
        await reader.vm.devices.query({ id: "seen" });

        const why = /needs a token of scope 'full'; this token's scope is 'read'/;
        await refused(reader.vm.quit.mutate({ id: "seen" }), "FORBIDDEN", /vm\.quit needs a token/);
        await refused(
          reader.vm.consoleInput.mutate({ id: "seen", data: "help\n" }),
          "FORBIDDEN",
          why,
        );
        await refused(
          reader.vm.qmp.mutate({ id: "seen", execute: "stop" }),
          "FORBIDDEN",
          /vm\.qmp needs a token/,
        );
        const mutations = mutationPaths();
        assert.ok(mutations.length >= 15, `mutations found: ${mutations.join(", ")}`);
        for (const name of mutations) {
          const response = await fetch(`${virgad.url}/trpc/${name}`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${virgad.readToken}`,
              "content-type": "application/json",
            },
            body: JSON.stringify({ id: "seen" }),
          });
          assert.equal(response.status, 403, name);
          const body = (await response.json()) as { error: { message: string } };
          assert.match(
            body.error.message,
            new RegExp(`^${name.replace(".", "\\.")} needs a token of scope 'full'`),
          );
        }
        assert.equal((await full.vm.get.query({ id: "seen" })).state, "running", "nothing changed");
        output.close();
        events.close();
      }),
  );

  it("serves only TLS beyond loopback, with a certificate that survives a restart", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start(fx.runDir, "0.0.0.0:0");
      assert.equal(virgad.scheme, "https");
      const certFile = path.join(fx.runDir, "tls", "cert.pem");
      const cert = readFileSync(certFile, "utf8");
      const pin = new X509Certificate(cert).fingerprint256;
      assert.match(virgad.stdout, new RegExp(`certificate SHA-256 fingerprint ${pin}`));
      assert.equal(statSync(path.join(fx.runDir, "tls", "key.pem")).mode & 0o777, 0o600);

      const ok = await pinnedGet(`${virgad.url}/trpc/host.whoami`, virgad.token, cert, pin);
      assert.equal(ok.status, 200, ok.body);
      assert.match(ok.body, /"scope":"full"/);
      const wrongPin = pin.replace(/^../, pin.startsWith("00") ? "11" : "00");
      await assert.rejects(
        pinnedGet(`${virgad.url}/trpc/host.whoami`, virgad.token, cert, wrongPin),
        /pin mismatch/,
      );
      // Plain HTTP to the TLS port gets no answer from the API.
      await assert.rejects(fetch(`http://127.0.0.1:${virgad.port}/trpc/host.whoami`));
      // Without the pinned certificate, a default client refuses the self-signed one.
      await assert.rejects(fetch(`${virgad.url}/trpc/host.whoami`));

      await virgad.stop();
      const again = await fx.start(fx.runDir, "0.0.0.0:0");
      assert.equal(readFileSync(certFile, "utf8"), cert, "the certificate is kept");
      assert.equal(
        (await pinnedGet(`${again.url}/trpc/host.whoami`, again.token, cert, pin)).status,
        200,
      );
    }),
  );

  it(
    "refuses a disk outside the image directories, through .. or a symlink; names bad input",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        const outside = path.join(fx.tmp.dir, "outside.img");
        writeFileSync(outside, Buffer.alloc(4096));
        mkdirSync(path.join(fx.imagesDir, "sub"));
        symlinkSync(outside, path.join(fx.imagesDir, "sneaky.img"));
        const withDisk = (file: string) => ({
          ...fx.probeConfig(),
          drives: [{ id: "d0", file, readOnly: false, direct: false }],
          devices: [{ driver: "virtio-blk-device" as const, id: "d0", drive: "d0" }],
        });
        const refused = async (
          call: Promise<unknown>,
          code: string,
          pattern: RegExp,
        ): Promise<void> => {
          await assert.rejects(call, (error: unknown) => {
            assert.ok(error instanceof TRPCClientError, String(error));
            assert.equal((error.data as { code?: string } | undefined)?.code, code, error.message);
            assert.match(error.message, pattern);
            return true;
          });
        };
        await refused(
          client.vm.create.mutate({ id: "d1", config: withDisk(outside) }),
          "FORBIDDEN",
          /config\.drives\.0\.file: '.*\/outside\.img' is outside the image directories/,
        );
        await refused(
          client.vm.create.mutate({
            id: "d2",
            config: withDisk(`${fx.imagesDir}/sub/../../outside.img`),
          }),
          "FORBIDDEN",
          /config\.drives\.0\.file: '.*\/sub\/\.\.\/\.\.\/outside\.img' is outside/,
        );
        await refused(
          client.vm.create.mutate({
            id: "d3",
            config: withDisk(path.join(fx.imagesDir, "sneaky.img")),
          }),
          "FORBIDDEN",
          /sneaky\.img' resolves to '.*\/outside\.img', outside the image directories/,
        );
        await refused(
          client.vm.create.mutate({
            id: "k1",
            config: { ...fx.probeConfig(), kernel: "/etc/passwd" },
          }),
          "FORBIDDEN",
          /config\.kernel: '\/etc\/passwd' is outside/,
        );
        await refused(
          client.vm.create.mutate({
            id: "m1",
            config: { ...fx.probeConfig(), memoryBytes: 12345 },
          }),
          "BAD_REQUEST",
          /config\.memoryBytes/,
        );
        await refused(
          client.vm.start.mutate({ id: "ghost" }),
          "NOT_FOUND",
          /no VM with id 'ghost'/,
        );
        assert.deepEqual(readdirSync(path.join(fx.runDir, "vms")), [], "nothing half-created");
        assert.deepEqual(await client.vm.list.query(), []);

        await client.vm.create.mutate({ id: "idle", config: fx.probeConfig() });
        await refused(
          client.vm.pause.mutate({ id: "idle" }),
          "PRECONDITION_FAILED",
          /cannot pause VM 'idle': it is created/,
        );
      }),
  );
});
