// virgad's front door: no token → 401 on every route and on the websocket;
// configs naming files outside the image directories (directly, through
// `..`, or through a symlink) are refused, and nothing is left behind.
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { TRPCClientError } from "@trpc/client";
import WebSocket from "ws";
import { withVirgad, type VirgadProcess } from "./harness";

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
      // ?token= is for websocket upgrades only.
      assert.equal((await status(virgad, `/trpc/vm.list?token=${virgad.token}`)).status, 401);
      const good = { authorization: `Bearer ${virgad.token}` };
      assert.equal((await status(virgad, "/trpc/vm.list", { headers: good })).status, 200);
      assert.equal((await status(virgad, "/nope", { headers: good })).status, 404);

      const ws = `ws://127.0.0.1:${virgad.port}/trpc`;
      assert.equal(await upgradeStatus(ws), 401);
      assert.equal(await upgradeStatus(`${ws}?token=${"1".repeat(64)}`), 401);
      assert.equal(await upgradeStatus(ws, { authorization: "Bearer nope" }), 401);
      assert.equal(await upgradeStatus(ws, good), 101);
      assert.equal(await upgradeStatus(`${ws}?token=${virgad.token}`), 101);
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
