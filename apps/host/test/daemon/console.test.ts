// The console relay end to end: two clients plus one that joins after boot
// all see the guest's ready marker; a client that never reads stalls neither
// the guest nor the others; a client resumes from the last id it saw.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import WebSocket from "ws";
import { requireKvmHost } from "../support/guest";
import { ConsoleWatcher, waitUntil, withVirgad } from "./harness";

const TEST = { timeout: 60000 };

describe("virgad console", () => {
  before(() => {
    requireKvmHost();
  });

  it("fans the console out to many clients; one that never reads stalls nobody", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const client = virgad.client();
      const other = virgad.client(); // a second websocket
      await client.vm.create.mutate({ id: "con", config: fx.probeConfig() });

      const first = new ConsoleWatcher(client, "con");
      const second = new ConsoleWatcher(other, "con");
      // A raw websocket client that subscribes, then stops reading its socket.
      const stuck = new WebSocket(`ws://127.0.0.1:${virgad.port}/trpc`, {
        headers: { authorization: `Bearer ${virgad.token}` },
      });
      let stuckStarted = false;
      stuck.on("message", (raw: Buffer) => {
        const message = JSON.parse(raw.toString("utf8")) as { result?: { type?: string } };
        if (message.result?.type === "started") {
          stuckStarted = true;
          stuck.pause();
        }
      });
      stuck.on("error", () => undefined);
      await new Promise<void>((resolve, reject) => {
        stuck.once("open", resolve);
        stuck.once("error", reject);
      });
      stuck.send(
        JSON.stringify({
          id: 1,
          method: "subscription",
          params: { path: "vm.console", input: { id: "con" } },
        }),
      );
      await waitUntil(() => stuckStarted, "the stuck client's subscription");
      await first.waitStarted();
      await second.waitStarted();

      const vm = await client.vm.start.mutate({ id: "con" });
      fx.track(vm.pid);
      await first.waitFor(/PROBE ready/);
      await second.waitFor(/PROBE ready/);
      const late = new ConsoleWatcher(client, "con");
      await late.waitFor(/PROBE boot entry=linux64[\s\S]*PROBE ready/);
      assert.equal(late.firstOffset, 0, "a late client starts with the scrollback");

      await client.vm.consoleInput.mutate({ id: "con", data: "count 30\n" });
      for (const watcher of [first, second, late]) await watcher.waitFor(/count 30\nOK count/);
      assert.equal(first.text, second.text, "both clients saw the same bytes");
      const status = await client.vm.qmp.mutate({ id: "con", execute: "query-status" });
      assert.deepEqual(status, { return: { running: true, singlestep: false, status: "running" } });

      // Resume: the late client goes away and comes back with its last id.
      const lastId = late.lastId;
      assert.ok(lastId !== null);
      late.close();
      await client.vm.consoleInput.mutate({ id: "con", data: "help\n" });
      await first.waitFor(/OK help/);
      const back = new ConsoleWatcher(client, "con", lastId);
      await back.waitFor(/OK help/);
      assert.equal(back.firstOffset, Number(lastId));
      assert.match(back.text, /^help\r?\n/);
      assert.doesNotMatch(back.text, /PROBE ready|OK count/);
      stuck.terminate();
    }),
  );
});
