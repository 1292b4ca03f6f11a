// Bad QMP clients against a running VM: random bytes, oversized and deeply
// nested JSON, malformed messages left open, wrong types, unknown commands,
// floods from several clients and clients vanishing mid-stream. The guest keeps running (its counter
// keeps counting), the VMM's memory stays bounded and a fresh client still
// gets correct answers.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { before, describe, it } from "node:test";
import { tempDir } from "../support/disk";
import { connectQmp, probeArgs, requireKvmHost, withVmm, type VmmProcess } from "../support/guest";

const BOOT_MS = 30000;

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

function randomBytes(count: number, seed: number): Buffer {
  const buf = Buffer.alloc(count);
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    buf[i] = state & 0xff;
  }
  return buf;
}

/** The probe guest at its prompt with a QMP socket; body gets the socket's path. */
async function withProbe(body: (vm: VmmProcess, socketPath: string) => Promise<void>) {
  const tmp = tempDir();
  try {
    const socketPath = path.join(tmp.dir, "qmp.sock");
    await withVmm([...probeArgs(), "-qmp", `unix:${socketPath},server,nowait`], async (vm) => {
      await vm.waitFor(/probe> /, BOOT_MS);
      await body(vm, socketPath);
    });
  } finally {
    tmp.cleanup();
  }
}

describe("QMP robustness on a running VM", () => {
  before(() => {
    requireKvmHost();
  });

  it("survives garbage, oversized input and floods from several clients", { timeout: 120000 }, () =>
    withProbe(async (vm, socketPath) => {
      vm.send("count");
      await vm.waitFor(/count 2\b/, BOOT_MS);
      const pid = vm.child.pid ?? 0;
      const rssBefore = rssKiB(pid);

      // Garbage of every kind on one connection.
      const bad = await connectQmp(socketPath);
      bad.sendRaw(randomBytes(200_000, 11));
      bad.sendRaw("\n");
      bad.sendRaw("[".repeat(5000) + "]".repeat(5000) + "\n");
      bad.sendRaw(`{"execute":"query-status","arguments":{"pad":"${"x".repeat(200_000)}"}}\n`);
      bad.sendRaw(
        '{"execute":42}\n{"execute":"stop","arguments":{"now":true}}\n{"execute":"no-such"}\n',
      );
      assert.deepEqual(await bad.execute("query-status"), {
        running: true,
        singlestep: false,
        status: "running",
      });

      // Floods: 4 clients x 2500 commands, far over the 100/s limit.
      const flooders = await Promise.all([1, 2, 3, 4].map(() => connectQmp(socketPath)));
      for (const client of flooders) {
        client.sendRaw('{"execute":"query-status"}'.repeat(2500));
      }
      // Clients that send half a command and vanish.
      for (let i = 0; i < 20; i++) {
        const s = net.connect(socketPath);
        s.on("connect", () => {
          s.write('{"execute":"query-st');
          s.destroy();
        });
        s.on("error", () => undefined);
      }
      const deadline = Date.now() + 60000;
      while (flooders.some((c) => c.messages.length < 2501) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const client of flooders) {
        const replies = client.messages.slice(1);
        assert.equal(replies.length, 2500);
        const throttled = replies.filter(
          (m) => (m.error as { class?: string } | undefined)?.class === "OperationThrottled",
        );
        assert.ok(throttled.length > 2000, `throttled ${throttled.length}`);
        client.close();
      }
      bad.close();

      // The guest never stopped counting, and a fresh client is answered.
      const counted = [...vm.serial.text.matchAll(/count (\d+)/g)].length;
      await vm.waitFor(new RegExp(`count ${counted + 3}\\b`), BOOT_MS);
      const fresh = await connectQmp(socketPath);
      assert.deepEqual(await fresh.execute("query-status"), {
        running: true,
        singlestep: false,
        status: "running",
      });
      fresh.close();
      const growth = rssKiB(pid) - rssBefore;
      assert.ok(growth < 64 * 1024, `RSS grew by ${growth} KiB`);
    }),
  );

  it(
    "answers the commands pasted after a stray '}', an unclosed '{' and bare words",
    { timeout: 60000 },
    () =>
      withProbe(async (vm, socketPath) => {
        const client = await connectQmp(socketPath);
        // As pasted into ncat: the malformed line, then commands, one of
        // them split across two writes.
        client.sendRaw('} { foo bar\n{"execute":"stop","id":"a"}\n{"execute":"query-st');
        await new Promise((r) => setTimeout(r, 50));
        client.sendRaw('atus","id":"b"}\n{ "execute": nope, {"execute":"cont","id":"c"}\n');
        const reply = (id: string) => client.waitFor((m) => m.id === id, 5000);
        assert.deepEqual(await reply("a"), { return: {}, id: "a" });
        assert.deepEqual(await reply("b"), {
          return: { running: false, singlestep: false, status: "paused" },
          id: "b",
        });
        assert.deepEqual(await reply("c"), { return: {}, id: "c" });
        const errors = client.messages
          .filter((m) => "error" in m)
          .map((m) => (m.error as { desc: string }).desc);
        assert.deepEqual(errors, [
          "JSON parse error: unbalanced '}' (no object is open)",
          "JSON parse error: invalid token 'foo' (expected a string, a number, true, false or null)",
          "JSON parse error: invalid token 'nope' (expected a string, a number, true, false or null)",
        ]);
        // Every error came before the answer to the command after it.
        const order = client.messages
          .filter((m) => !("QMP" in m) && !("event" in m))
          .map((m) => ("error" in m ? "error" : String(m.id)));
        assert.deepEqual(order, ["error", "error", "a", "b", "error", "c"]);
        // The guest runs on after stop and cont.
        vm.send("count");
        await vm.waitFor(/count 2\b/, BOOT_MS);
        client.close();
      }),
  );
});
