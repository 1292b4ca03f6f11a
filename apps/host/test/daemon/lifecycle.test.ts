// virgad end to end: real virgad, real virga-vmm, probe guests. Two VMs boot;
// one is paused and resumed, the other quit; the websocket event stream shows
// it all in order and resumes from an id. A VM killed from outside is
// `crashed` with its last console lines; a guest power-off is `shutdown`.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { TRPCClientError } from "@trpc/client";
import { requireKvmHost } from "../support/guest";
import { ConsoleWatcher, EventWatcher, alive, waitUntil, withVirgad } from "./harness";

const TEST = { timeout: 60000 };

describe("virgad lifecycle", () => {
  before(() => {
    requireKvmHost();
  });

  it("boots two VMs, pauses and resumes one, quits the other; events arrive in order", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const client = virgad.client();
      // From seq 0: every event, however late the subscription gets going.
      const events = new EventWatcher(client, { lastEventId: "0" });
      await client.vm.create.mutate({ id: "alpha", config: fx.probeConfig() });
      await client.vm.create.mutate({ id: "beta", config: fx.probeConfig({ cpus: 2 }) });
      const alphaConsole = new ConsoleWatcher(client, "alpha");
      const betaConsole = new ConsoleWatcher(client, "beta");
      // One boot at a time: on a loaded machine two guests booting at once
      // can out-run the reader, and virga-vmm drops console bytes then
      // (docs/virgad.md, "Known limit").
      const alpha = await client.vm.start.mutate({ id: "alpha" });
      fx.track(alpha.pid);
      await alphaConsole.waitFor(/PROBE ready/);
      const beta = await client.vm.start.mutate({ id: "beta" });
      fx.track(beta.pid);
      await betaConsole.waitFor(/PROBE cpus online=2[\s\S]*PROBE ready/);
      assert.equal(alpha.state, "running");
      assert.equal(beta.state, "running");
      assert.ok(alpha.pid !== null && alive(alpha.pid));

      const cpus = await client.vm.cpus.query({ id: "beta" });
      assert.equal((cpus.cpus as unknown[]).length, 2);

      assert.equal((await client.vm.pause.mutate({ id: "alpha" })).state, "paused");
      const status = await client.vm.qmp.mutate({ id: "alpha", execute: "query-status" });
      assert.deepEqual(status, {
        return: { running: false, singlestep: false, status: "paused" },
      });
      assert.equal((await client.vm.resume.mutate({ id: "alpha" })).state, "running");

      const quit = await client.vm.quit.mutate({ id: "beta" });
      assert.equal(quit.state, "shutdown");
      assert.equal(quit.pid, null);
      assert.equal(quit.exit?.code, 0);
      assert.equal(beta.pid !== null && alive(beta.pid), false, "beta's VMM exited");

      await events.waitFor(
        () => events.of("beta").includes("VM_STATE:shutdown"),
        "beta's shutdown event",
      );
      assert.deepEqual(events.of("alpha"), [
        "VM_CREATED",
        "VM_STATE:prelaunch",
        "RESUME",
        "VM_STATE:running",
        "STOP",
        "VM_STATE:paused",
        "RESUME",
        "VM_STATE:running",
      ]);
      assert.deepEqual(events.of("beta"), [
        "VM_CREATED",
        "VM_STATE:prelaunch",
        "RESUME",
        "VM_STATE:running",
        "SHUTDOWN",
        "VM_STATE:shutdown",
      ]);
      const seqs = events.events.map((e) => e.seq);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => i + 1),
        "seq counts up by one",
      );

      // A subscriber that comes back with the id of alpha's STOP gets exactly the rest.
      const stop = events.events.find((e) => e.vmId === "alpha" && e.event === "STOP");
      assert.ok(stop !== undefined);
      const resumed = new EventWatcher(client, { lastEventId: String(stop.seq) });
      await resumed.waitFor((list) => list.length === seqs.length - stop.seq, "the missed events");
      assert.deepEqual(
        resumed.events.map((e) => e.seq),
        seqs.slice(stop.seq),
      );

      const info = await client.host.info.query();
      const alphaInfo = info.vms.find((vm) => vm.id === "alpha");
      assert.equal(alphaInfo?.state, "running");
      assert.ok((alphaInfo.rssBytes ?? 0) > 0);
      assert.equal(info.kvm.present, true);
    }),
  );

  it(
    "keeps a VM that dies on its own as crashed with its last console lines; restarts it; a guest power-off is shutdown",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const virgad = await fx.start();
        const client = virgad.client();
        await client.vm.create.mutate({ id: "gamma", config: fx.probeConfig() });
        const console = new ConsoleWatcher(client, "gamma");
        const first = await client.vm.start.mutate({ id: "gamma" });
        fx.track(first.pid);
        await console.waitFor(/PROBE ready/);
        assert.ok(first.pid !== null);
        process.kill(first.pid, "SIGKILL");
        await waitUntil(() => !alive(first.pid ?? 0), "the VMM to die");
        let crashed = await client.vm.get.query({ id: "gamma" });
        for (let i = 0; i < 100 && crashed.state !== "crashed"; i++) {
          await new Promise((r) => setTimeout(r, 50));
          crashed = await client.vm.get.query({ id: "gamma" });
        }
        assert.equal(crashed.state, "crashed");
        assert.equal(crashed.exit?.signal, "SIGKILL");
        assert.ok(crashed.exit.lastConsoleLines.includes("PROBE ready"));
        await assert.rejects(
          client.vm.pause.mutate({ id: "gamma" }),
          /cannot pause VM 'gamma': it is crashed/,
        );

        const second = await client.vm.start.mutate({ id: "gamma" });
        fx.track(second.pid);
        assert.equal(second.state, "running");
        assert.equal(second.exit, null);
        await console.waitFor(/PROBE ready[\s\S]*PROBE ready/);
        await client.vm.consoleInput.mutate({ id: "gamma", data: "poweroff\n" });
        await console.waitFor(/OK poweroff/);
        let off = await client.vm.get.query({ id: "gamma" });
        for (let i = 0; i < 200 && off.state !== "shutdown"; i++) {
          await new Promise((r) => setTimeout(r, 50));
          off = await client.vm.get.query({ id: "gamma" });
        }
        assert.equal(off.state, "shutdown");
        assert.equal(off.exit?.code, 0);
        assert.deepEqual(await client.vm.delete.mutate({ id: "gamma" }), { id: "gamma" });
        assert.deepEqual(await client.vm.list.query(), []);
      }),
  );

  it("reports a VM that cannot start with the VMM's reason and leaves no process", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const client = virgad.client();
      const garbage = path.join(fx.imagesDir, "garbage.elf");
      writeFileSync(garbage, Buffer.alloc(8192, 0x5a));
      await client.vm.create.mutate({
        id: "bad",
        config: { ...fx.probeConfig(), kernel: garbage },
      });
      await assert.rejects(client.vm.start.mutate({ id: "bad" }), (error: unknown) => {
        assert.ok(error instanceof TRPCClientError);
        assert.equal((error.data as { code?: string } | undefined)?.code, "INTERNAL_SERVER_ERROR");
        assert.match(error.message, /^VM 'bad' failed to start: .*\S/);
        assert.doesNotMatch(error.message, /code \?/);
        return true;
      });
      const bad = await client.vm.get.query({ id: "bad" });
      assert.equal(bad.state, "crashed");
      assert.equal(bad.pid, null);
      assert.equal(bad.exit?.code, 1);
      assert.ok((bad.exit.error ?? "") !== "", "the VMM's error is kept");
      assert.deepEqual(await client.vm.delete.mutate({ id: "bad" }), { id: "bad" });
    }),
  );
});
