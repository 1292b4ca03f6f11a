import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { format, parse, validate } from "./drive";

describe("-drive", () => {
  const good: [string, object][] = [
    ["file=/a.img,id=d0", { file: "/a.img", id: "d0", readOnly: false, direct: false }],
    [
      "file=/path/to/rootfs,id=rootfs,readonly=off,direct=off",
      { file: "/path/to/rootfs", id: "rootfs", readOnly: false, direct: false },
    ],
    [
      "id=x,file=b.img,readonly=on,direct=on",
      { file: "b.img", id: "x", readOnly: true, direct: true },
    ],
    [
      "file=c,id=c,readonly=true,if=none,format=raw",
      { file: "c", id: "c", readOnly: true, direct: false },
    ],
    ["file=a,,b.img,id=d", { file: "a,b.img", id: "d", readOnly: false, direct: false }],
  ];
  for (const [text, want] of good) {
    it(`parses '${text}'`, () => {
      assert.deepEqual(parse(text), want);
      assert.deepEqual(parse(format(parse(text))), want);
    });
  }
  const bad: [string, RegExp][] = [
    ["id=d0", /missing file=/],
    ["file=/a.img", /missing id=/],
    ["file=/a.img,id=d0,readonly=maybe", /readonly must be on or off/],
    ["file=/a.img,id=d0,direct=2", /direct must be on or off/],
    ["file=/a.img,id=d0,format=qcow2", /format=qcow2 is not supported/],
    ["file=/a.img,id=d0,if=virtio", /if=virtio is not supported/],
    ["file=/a.img,id=d0,cache=none", /unknown option 'cache'/],
    ["file=/a.img,id=d0,id=d1", /'id' given twice/],
    ["/a.img", /needs a key/],
    ["file=,id=d0", /file: empty|file/],
  ];
  for (const [text, message] of bad) {
    it(`rejects '${text}'`, () => {
      assert.throws(
        () => parse(text),
        (e: Error) =>
          e.message.startsWith("-drive: ") &&
          message.test(e.message) &&
          e.message.includes("expected file=<path>,id=<id>"),
      );
    });
  }
  it("validate requires an existing regular file", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "virga-drive-"));
    try {
      const file = path.join(dir, "disk.img");
      writeFileSync(file, Buffer.alloc(512));
      validate({ file, id: "d", readOnly: false, direct: false });
      assert.throws(() => {
        validate({ file: path.join(dir, "missing.img"), id: "d", readOnly: false, direct: false });
      }, /-drive: no such file/);
      assert.throws(() => {
        validate({ file: dir, id: "d", readOnly: false, direct: false });
      }, /not a regular file/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
