// One QMP session over an in-memory duplex pair with a fake VM: what a
// client sees when valid commands and malformed messages arrive mixed and
// split across reads at random.
import assert from "node:assert/strict";
import { duplexPair, type Duplex } from "node:stream";
import { describe, it } from "node:test";
import fc from "fast-check";
import { fakeMachine } from "../vmm/testing/fake-native-vm";
import { COMMAND_TABLE } from "./commands/index";
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_BYTES } from "./json-stream";
import { QmpSession } from "./session";
import { assertResynchronised, interleaving, splitAt, type Seen } from "./testing/malformed";

type Reply = Record<string, unknown>;

/** A session on one end of a pair; the other end is the client. */
function connect(): {
  client: Duplex;
  replies: () => Reply[];
  until: (id: unknown) => Promise<Reply[]>;
} {
  const [client, server] = duplexPair();
  new QmpSession(server, { table: COMMAND_TABLE, vm: fakeMachine().machine, rateLimit: 0 });
  let text = "";
  client.setEncoding("utf8");
  client.on("data", (chunk: string) => (text += chunk));
  const replies = () =>
    text
      .split("\r\n")
      .slice(1, -1) // the greeting; the line in progress
      .map((line) => JSON.parse(line) as Reply);
  const until = async (id: unknown): Promise<Reply[]> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const all = replies();
      if (all.some((r) => r.id === id)) return all;
      if (Date.now() > deadline) throw new Error(`no reply with id ${String(id)}; got ${text}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  return { client, replies, until };
}

describe("QMP session input", () => {
  it("answers the commands after a stray '}', an unclosed '{' and bare words", async () => {
    const { client, until } = connect();
    client.write('} { foo bar {"execute":"query-status","id":1}\n');
    client.write('{"execute":"query-kvm","id":2}\n');
    const replies = await until(2);
    assert.deepEqual(replies, [
      {
        error: {
          class: "GenericError",
          desc: "JSON parse error: unbalanced '}' (no object is open)",
        },
      },
      {
        error: {
          class: "GenericError",
          desc: "JSON parse error: invalid token 'foo' (expected a string, a number, true, false or null)",
        },
      },
      { return: { running: true, singlestep: false, status: "running" }, id: 1 },
      { return: { enabled: true, present: true }, id: 2 },
    ]);
    client.destroy();
  });

  it("answers every valid command once, in order, among malformed messages split anywhere", async () => {
    const limits = { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, maxDepth: DEFAULT_MAX_DEPTH };
    await fc.assert(
      fc.asyncProperty(interleaving(limits), splitAt(), async (run, cuts) => {
        const { client, until } = connect();
        for (const piece of cuts(run.bytes)) client.write(piece);
        client.write('{"execute":"query-status","id":"end"}');
        const replies = await until("end");
        client.destroy();
        const seen = replies.slice(0, -1).map((reply): Seen => {
          if ("error" in reply) return "error";
          assert.equal(typeof reply.id, "number", JSON.stringify(reply));
          return { answered: reply.id as number };
        });
        assertResynchronised(run, seen, "session");
      }),
      { numRuns: 150 },
    );
  });
});
