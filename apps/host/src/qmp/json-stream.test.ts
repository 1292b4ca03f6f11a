import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JsonStreamSplitter, type StreamItem } from "./json-stream";

function feed(splitter: JsonStreamSplitter, ...chunks: (string | Buffer)[]): StreamItem[] {
  return chunks.flatMap((c) => splitter.push(typeof c === "string" ? Buffer.from(c) : c));
}

const texts = (items: StreamItem[]) =>
  items.map((i) => (i.kind === "text" ? i.text : `ERR ${i.reason}`));

describe("JSON stream splitter", () => {
  it("splits several objects in one read, with and without newlines", () => {
    const s = new JsonStreamSplitter();
    assert.deepEqual(texts(feed(s, '{"a":1}{"b":2}\n{"c":[3,{"d":4}]}  \r\n')), [
      '{"a":1}',
      '{"b":2}',
      '{"c":[3,{"d":4}]}',
    ]);
  });

  it("joins an object split across reads, even byte by byte", () => {
    const text = '{"execute":"query-status","id":"x{}\\"]"}';
    const s = new JsonStreamSplitter();
    const out = feed(s, ...text.split(""));
    assert.deepEqual(texts(out), [text]);
  });

  it("keeps a multi-byte character split across reads", () => {
    const bytes = Buffer.from('{"id":"héllo €"}');
    const s = new JsonStreamSplitter();
    const out = feed(s, bytes.subarray(0, 9), bytes.subarray(9, 15), bytes.subarray(15));
    assert.deepEqual(texts(out), ['{"id":"héllo €"}']);
  });

  it("ignores braces inside strings", () => {
    const s = new JsonStreamSplitter();
    assert.deepEqual(texts(feed(s, '{"a":"}}}{{{\\\\"}{"b":1}')), [
      '{"a":"}}}{{{\\\\"}',
      '{"b":1}',
    ]);
  });

  it("hands scalars and strings over as values (the dispatcher rejects them)", () => {
    const s = new JsonStreamSplitter();
    assert.deepEqual(texts(feed(s, '42 "str" true garbage{"a":1}')), [
      "42",
      '"str"',
      "true",
      "garbage",
      '{"a":1}',
    ]);
  });

  it("refuses an oversized message once and stays usable", () => {
    const s = new JsonStreamSplitter(1024);
    const big = `{"execute":"x","arguments":{"pad":"${"a".repeat(5000)}"}}`;
    const out = feed(s, big.slice(0, 2000), big.slice(2000), '{"ok":true}');
    assert.deepEqual(texts(out), ["ERR message larger than 1024 bytes", '{"ok":true}']);
  });

  it("refuses deep nesting and skips to the end of that value", () => {
    const s = new JsonStreamSplitter(1 << 20, 8);
    const deep = "[".repeat(20) + "]".repeat(20);
    assert.deepEqual(texts(feed(s, deep + '{"ok":1}')), [
      "ERR JSON nesting deeper than 8",
      '{"ok":1}',
    ]);
  });

  it("resynchronises after a byte that cannot occur in JSON", () => {
    const s = new JsonStreamSplitter();
    const out = texts(feed(s, '{"a": \x01 {"b":2}'));
    assert.deepEqual(out, ["ERR invalid JSON: unexpected byte 0x01", '{"b":2}']);
  });

  it("survives random bytes and still splits what follows", () => {
    const s = new JsonStreamSplitter();
    let seed = 7;
    const random = Buffer.alloc(20000);
    for (let i = 0; i < random.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      random[i] = seed & 0xff;
    }
    feed(s, random);
    // Whatever state the garbage left, a newline-separated recovery line plus
    // a few closing brackets gets the scanner back to idle.
    feed(s, "\x01\n");
    const out = texts(feed(s, '{"execute":"query-status"}'));
    assert.deepEqual(out.at(-1), '{"execute":"query-status"}');
  });
});
