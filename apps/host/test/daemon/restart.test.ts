// Restart safety: `kill -9` of virgad leaves every VM running; a new virgad
// on the same run directory re-attaches (QMP and console) without
// restarting any, has the boot log from disk, shows the console going on,
// reports states as they are, and reports a VM that died meanwhile.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { requireKvmHost } from "../support/guest";
import { ConsoleWatcher, EventWatcher, alive, waitUntil, withVirgad } from "./harness";

const TEST = { timeout: 60000 };

function lastCount(text: string): number {
  const counts = [...text.matchAll(/count (\d+)\n/g)].map((m) => Number(m[1]));
  return counts.length === 0 ? 0 : Math.max(...counts);
}

describe("virgad restart", () => {
  before(() => {
    requireKvmHost();
  });

  it("kill -9 of virgad leaves the VMs running; a new virgad re-attaches to them", TEST, () =>
    withVirgad(async (fx) => {
      const first = await fx.start();
      const client = first.client();
      const ids = ["r1", "r2", "r3"];
      for (const id of ids) await client.vm.create.mutate({ id, config: fx.probeConfig() });
      const consoles = ids.map((id) => new ConsoleWatcher(client, id));
      const pids: number[] = [];
      // One boot at a time (see lifecycle.test.ts).
      for (const [index, id] of ids.entries()) {
        const vm = await client.vm.start.mutate({ id });
        fx.track(vm.pid);
        pids.push(vm.pid ?? 0);
        await consoles[index]?.waitFor(/PROBE ready/);
      }
      const [r1Console] = consoles;
      assert.ok(r1Console !== undefined);

      await client.vm.pause.mutate({ id: "r2" });
      await client.vm.consoleInput.mutate({ id: "r1", data: "count\n" });
      await r1Console.waitFor(/count 3\n/);
      const lastIdBefore = r1Console.lastId;
      assert.ok(lastIdBefore !== null);

      await first.kill9();
      for (const pid of pids) assert.ok(alive(pid), `VM pid ${pid} survives virgad's kill -9`);
      // r3 dies while no virgad is watching.
      process.kill(pids[2] ?? 0, "SIGKILL");
      await waitUntil(() => !alive(pids[2] ?? 0), "r3 to die");
      const countBefore = lastCount(r1Console.text);

      const second = await fx.start();
      const client2 = second.client();
      const events = new EventWatcher(client2, { id: "r2" });
      const list = await client2.vm.list.query();
      const byId = new Map(list.map((vm) => [vm.id, vm]));
      assert.equal(byId.get("r1")?.state, "running");
      assert.equal(byId.get("r1")?.pid, pids[0], "r1 re-attached, not restarted");
      assert.equal(byId.get("r2")?.state, "paused");
      assert.equal(byId.get("r2")?.pid, pids[1]);
      assert.equal(byId.get("r3")?.state, "crashed");
      assert.equal(byId.get("r3")?.pid, null);
      assert.ok(byId.get("r3")?.exit?.lastConsoleLines.includes("PROBE ready"));
      assert.deepEqual(await client2.vm.qmp.mutate({ id: "r2", execute: "query-status" }), {
        return: { running: false, singlestep: false, status: "paused" },
      });

      // The new virgad has the boot log (from disk) and the output going on.
      const fresh = new ConsoleWatcher(client2, "r1");
      await fresh.waitFor(/PROBE ready/);
      await waitUntil(() => lastCount(fresh.text) > countBefore + 2, "count to go on");
      // A client of the old virgad resumes from its last id, with nothing repeated.
      const resumed = new ConsoleWatcher(client2, "r1", lastIdBefore);
      await resumed.waitFor(/count \d+\n/);
      assert.equal(resumed.firstOffset, Number(lastIdBefore));
      assert.doesNotMatch(resumed.text, /PROBE ready/);
      await client2.vm.consoleInput.mutate({ id: "r1", data: "x" });
      await fresh.waitFor(/OK count/);

      // Control works through the new virgad.
      await events.waitStarted();
      assert.equal((await client2.vm.resume.mutate({ id: "r2" })).state, "running");
      await events.waitFor(
        (list) => list.some((e) => e.event === "RESUME"),
        "r2's RESUME through the new virgad",
      );
      assert.equal((await client2.vm.quit.mutate({ id: "r1" })).state, "shutdown");
      await waitUntil(() => !alive(pids[0] ?? 0), "r1 to exit");
    }),
  );
});
