import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { escapeValue, parseItems, parseSwitch, splitItems } from "./options";

describe("option strings", () => {
  const splits: [string, string[]][] = [
    ["a", ["a"]],
    ["a,b=1,c", ["a", "b=1", "c"]],
    ["path=/x,,y,id=1", ["path=/x,y", "id=1"]],
    ["", [""]],
    ["a,", ["a", ""]],
    ["a,,,,b", ["a,,b"]],
  ];
  for (const [text, want] of splits) {
    it(`splits '${text}'`, () => {
      assert.deepEqual(splitItems(text), want);
    });
  }
  it("parses key=value and bare items", () => {
    assert.deepEqual(parseItems("virtio-blk-device,drive=d=x,id=v"), [
      { key: null, value: "virtio-blk-device" },
      { key: "drive", value: "d=x" },
      { key: "id", value: "v" },
    ]);
  });
  it("escapes commas so values round-trip", () => {
    assert.deepEqual(splitItems(`path=${escapeValue("a,b,,c")}`), ["path=a,b,,c"]);
  });
  it("reads switches", () => {
    assert.equal(parseSwitch("on"), true);
    assert.equal(parseSwitch("true"), true);
    assert.equal(parseSwitch("off"), false);
    assert.equal(parseSwitch("no"), false);
    assert.equal(parseSwitch("1"), null);
  });
});
