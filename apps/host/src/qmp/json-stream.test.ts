import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { JsonStreamSplitter, type StreamItem } from "./json-stream";
import { assertResynchronised, interleaving, splitAt, type Seen } from "./testing/malformed";

function feed(splitter: JsonStreamSplitter, ...chunks: (string | Buffer)[]): StreamItem[] {
  return chunks.flatMap((c) => splitter.push(typeof c === "string" ? Buffer.from(c) : c));
}

const render = (items: StreamItem[]) =>
  items.map((i) => (i.kind === "value" ? JSON.stringify(i.value) : `ERR ${i.reason}`));

describe("JSON stream splitter", () => {
  it("splits several objects in one read, with and without newlines", () => {
    const s = new JsonStreamSplitter();
    assert.deepEqual(render(feed(s, '{"a":1}{"b":2}\n{"c":[3,{"d":4}]}  \r\n')), [
      '{"a":1}',
      '{"b":2}',
      '{"c":[3,{"d":4}]}',
    ]);
  });

  it("joins an object split across reads, even byte by byte", () => {
    const text = '{"execute":"query-status","id":"x{}\\"]\\u00e9"}';
    const s = new JsonStreamSplitter();
    const out = feed(s, ...text.split(""));
    assert.deepEqual(out, [{ kind: "value", value: JSON.parse(text) as unknown }]);
  });

  it("keeps a multi-byte character split across reads", () => {
    const bytes = Buffer.from('{"id":"héllo €"}');
    const s = new JsonStreamSplitter();
    const out = feed(s, bytes.subarray(0, 9), bytes.subarray(9, 15), bytes.subarray(15));
    assert.deepEqual(render(out), ['{"id":"héllo €"}']);
  });

  it("ignores braces inside strings", () => {
    const s = new JsonStreamSplitter();
    assert.deepEqual(render(feed(s, '{"a":"}}}{{{\\\\"}{"b":1}')), [
      '{"a":"}}}{{{\\\\"}',
      '{"b":1}',
    ]);
  });

  it("hands scalars over as values (the dispatcher rejects them) and refuses bare words", () => {
    const s = new JsonStreamSplitter();
    assert.deepEqual(render(feed(s, '42 -1.5e3 "str" true null garbage{"a":1}')), [
      "42",
      "-1500",
      '"str"',
      "true",
      "null",
      "ERR JSON parse error: invalid token 'garbage' (expected a string, a number, true, false or null)",
      '{"a":1}',
    ]);
  });

  it("answers the commands after a stray '}', an unclosed '{' and bare words", () => {
    const s = new JsonStreamSplitter();
    const out = render(
      feed(s, '} { foo bar {"execute":"query-status","id":1}\n{"execute":"stop","id":2}\n'),
    );
    assert.deepEqual(out, [
      "ERR JSON parse error: unbalanced '}' (no object is open)",
      "ERR JSON parse error: invalid token 'foo' (expected a string, a number, true, false or null)",
      '{"execute":"query-status","id":1}',
      '{"execute":"stop","id":2}',
    ]);
  });

  it("ends a message left open at the '{' of the next one", () => {
    const s = new JsonStreamSplitter();
    assert.deepEqual(render(feed(s, '{"execute":"stop"\n{"execute":"cont","id":3}')), [
      "ERR JSON parse error: expected ',' or '}' but got '{'",
      '{"execute":"cont","id":3}',
    ]);
    assert.deepEqual(render(feed(s, '{"a":1,{"b":2}[1,{"c":3} ]')), [
      "ERR JSON parse error: expected a member name (a string) but got '{'",
      '{"b":2}',
      '[1,{"c":3}]',
    ]);
  });

  it("names what the grammar expected at each kind of mistake", () => {
    const cases: [string, string][] = [
      ['{"a" 1}', "expected ':' but got '1'"],
      ['{"a":1,}', "expected a member name (a string) but got '}'"],
      ["[1,2,]", "expected a value but got ']'"],
      ['{"a":1]', "expected ',' or '}' but got ']'"],
      ["[1 2]", "expected ',' or ']' but got '2'"],
      ["{:}", "expected a member name (a string) or '}' but got ':'"],
      ['{1:"a"}', "expected a member name (a string) or '}' but got '1'"],
      ["]", "unbalanced ']' (no array is open)"],
      [",", "unexpected ',' outside an object"],
      ["01", "invalid token '01' (expected a string, a number, true, false or null)"],
      ["[1.]", "invalid token '1.' (expected a string, a number, true, false or null)"],
      ["{'a':1}", "invalid token '\\'a\\'' (expected a string, a number, true, false or null)"],
      ['"a\\qb"', "invalid escape '\\\\q' in a string"],
      ['"\\u12x4"', "'\\u' in a string must be followed by four hex digits"],
      ['{"a":"x\ty"}', "control character 0x09 inside a string (escape it)"],
      ["\x01", "invalid token '\\u0001' (expected a string, a number, true, false or null)"],
    ];
    for (const [input, reason] of cases) {
      const s = new JsonStreamSplitter();
      assert.deepEqual(
        render(feed(s, input + '\n{"ok":1}')),
        [`ERR JSON parse error: ${reason}`, '{"ok":1}'],
        input,
      );
    }
  });

  it("quotes at most 32 bytes of a long bad token", () => {
    const s = new JsonStreamSplitter();
    const [first] = render(feed(s, `${"x".repeat(100)} `));
    assert.equal(
      first,
      `ERR JSON parse error: invalid token '${"x".repeat(32)}…' (expected a string, a number, true, false or null)`,
    );
  });

  it("refuses an oversized message once and stays usable", () => {
    const s = new JsonStreamSplitter(1024);
    const big = `{"execute":"x","arguments":{"pad":"${"a".repeat(5000)}"}}`;
    const out = feed(s, big.slice(0, 2000), big.slice(2000), '{"ok":true}');
    assert.deepEqual(render(out), ["ERR message larger than 1024 bytes", '{"ok":true}']);
    const oneRead = feed(s, big + '{"ok":true}');
    assert.deepEqual(render(oneRead), ["ERR message larger than 1024 bytes", '{"ok":true}']);
  });

  it("refuses deep nesting and skips to the end of that value", () => {
    const s = new JsonStreamSplitter(1 << 20, 8);
    const deep = "[".repeat(20) + '"]]"' + "]".repeat(20);
    assert.deepEqual(render(feed(s, deep + '{"ok":1}')), [
      "ERR JSON nesting deeper than 8",
      '{"ok":1}',
    ]);
    const objects = '{"a":'.repeat(12) + "1" + "}".repeat(12);
    assert.deepEqual(render(feed(s, objects + '{"ok":2}')), [
      "ERR JSON nesting deeper than 8",
      '{"ok":2}',
    ]);
    assert.deepEqual(render(feed(s, "[".repeat(8) + "]".repeat(8))), ["[[[[[[[[]]]]]]]]"]);
  });

  it("survives random bytes and answers what follows the next line", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000, size: "max" }), (garbage) => {
        const s = new JsonStreamSplitter();
        s.push(Buffer.from(garbage));
        // Whatever state the garbage left, a control character ends a string
        // or word in progress and a line end ends the skipping after it.
        const out = render(feed(s, '\x01\n{"execute":"query-status"}'));
        assert.equal(out.at(-1), '{"execute":"query-status"}');
      }),
      { numRuns: 300 },
    );
  });
});

/** Values with an id stand for answered commands; errors for error replies. */
function seen(items: StreamItem[]): Seen[] {
  return items.flatMap((item): Seen[] => {
    if (item.kind === "error") return ["error"];
    const value = item.value as { id?: unknown } | null;
    return typeof value === "object" && value !== null && typeof value.id === "number"
      ? [{ answered: value.id }]
      : [];
  });
}

describe("JSON stream splitter with valid and malformed messages interleaved", () => {
  it("answers every valid command once, in order, wherever the reads split", () => {
    fc.assert(
      fc.property(interleaving({ maxBytes: 512, maxDepth: 8 }), splitAt(), (run, cuts) => {
        const whole = new JsonStreamSplitter(512, 8).push(run.bytes);
        assertResynchronised(run, seen(whole), "splitter");
        const s = new JsonStreamSplitter(512, 8);
        const pieces = cuts(run.bytes).flatMap((piece) => s.push(piece));
        assert.deepEqual(pieces, whole, "the same items whatever the chunk boundaries");
      }),
      { numRuns: 1500 },
    );
  });
});
