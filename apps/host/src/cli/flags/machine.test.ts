import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "./machine";

describe("-machine", () => {
  for (const text of ["microvm", "type=microvm"]) {
    it(`accepts '${text}'`, () => {
      assert.equal(parse(text), "microvm");
    });
  }
  const bad: [string, RegExp][] = [
    ["q35", /machine 'q35' is not supported yet/],
    ["type=q35", /machine 'q35' is not supported yet/],
    ["standard", /not supported yet/],
    ["isapc", /unknown machine type/],
    ["microvm,accel=tcg", /unknown option 'accel'/],
    ["", /unknown machine type/],
  ];
  for (const [text, message] of bad) {
    it(`rejects '${text}'`, () => {
      assert.throws(
        () => parse(text),
        (e: Error) =>
          e.message.startsWith("-machine: ") &&
          message.test(e.message) &&
          e.message.includes("expected [type=]microvm"),
      );
    });
  }
});
