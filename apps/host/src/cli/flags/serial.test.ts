import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { format, parse } from "./serial";

describe("-serial", () => {
  const good: [string, object][] = [
    ["stdio", { kind: "stdio" }],
    ["pty", { kind: "pty" }],
    ["none", { kind: "none" }],
    ["file,path=/tmp/console.log", { kind: "file", path: "/tmp/console.log" }],
    ["file:/tmp/c.log", { kind: "file", path: "/tmp/c.log" }],
    ["socket,path=/tmp/console.sock,server,nowait", { kind: "socket", path: "/tmp/console.sock" }],
    ["unix:/tmp/s.sock,server,nowait", { kind: "socket", path: "/tmp/s.sock" }],
    ["socket,path=/tmp/a,,b,server,nowait", { kind: "socket", path: "/tmp/a,b" }],
  ];
  for (const [text, want] of good) {
    it(`parses '${text}'`, () => {
      assert.deepEqual(parse(text), want);
      assert.deepEqual(parse(format(parse(text))), want);
    });
  }
  const bad: [string, RegExp][] = [
    ["vc", /unknown backend 'vc'/],
    ["socket,path=/tmp/s", /must be server,nowait/],
    ["socket,path=/tmp/s,server", /must be server,nowait/],
    ["file", /path/],
    ["stdio,path=/x", /stdio takes no options/],
    ["file,path=/x,server", /file takes only path=/],
    ["pty,signal=off", /unknown option 'signal'/],
  ];
  for (const [text, message] of bad) {
    it(`rejects '${text}'`, () => {
      assert.throws(
        () => parse(text),
        (e: Error) =>
          e.message.startsWith("-serial: ") &&
          message.test(e.message) &&
          e.message.includes("expected stdio|pty"),
      );
    });
  }
});
