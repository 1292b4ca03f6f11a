import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { format, parse } from "./memory";

const MiB = 1024 * 1024;

describe("-m", () => {
  const good: [string, number][] = [
    ["1024", 1024 * MiB],
    ["16", 16 * MiB],
    ["512M", 512 * MiB],
    ["512m", 512 * MiB],
    ["1G", 1024 * MiB],
    ["2g", 2048 * MiB],
    ["131072K", 128 * MiB],
    ["size=256M", 256 * MiB],
    ["256G", 256 * 1024 * MiB],
    ["1GiB", 1024 * MiB],
  ];
  for (const [text, bytes] of good) {
    it(`parses '${text}'`, () => {
      assert.equal(parse(text), bytes);
    });
  }
  const bad: [string, RegExp][] = [
    ["15", /less than 16 MiB/],
    ["0", /less than 16 MiB/],
    ["257G", /more than 256 GiB/],
    ["1T", /more than 256 GiB/],
    ["16385K", /not a whole number of MiB/],
    ["abc", /not a size/],
    ["1.5G", /not a size/],
    ["-1", /not a size/],
    ["1X", /not a size/],
  ];
  for (const [text, message] of bad) {
    it(`rejects '${text}'`, () => {
      assert.throws(
        () => parse(text),
        (e: Error) =>
          /^-m: /.test(e.message) &&
          message.test(e.message) &&
          e.message.includes("expected [size=]n"),
      );
    });
  }
  it("formats whole GiB as G and the rest as M", () => {
    assert.equal(format(1024 * MiB), "1G");
    assert.equal(format(1536 * MiB), "1536M");
    for (const [, bytes] of good) assert.equal(parse(format(bytes)), bytes);
  });
});
