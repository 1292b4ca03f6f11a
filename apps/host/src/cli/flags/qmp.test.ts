import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { format, parse } from "./qmp";

describe("-qmp", () => {
  const good: [string, object][] = [
    [
      "unix:/path/to/socket,server,nowait",
      { kind: "unix", path: "/path/to/socket", rateLimit: 100 },
    ],
    ["unix:rel.sock,nowait,server", { kind: "unix", path: "rel.sock", rateLimit: 100 }],
    [
      "tcp:127.0.0.1:4444,server,nowait",
      { kind: "tcp", host: "127.0.0.1", port: 4444, rateLimit: 100 },
    ],
    ["tcp:[::1]:4444,server,nowait", { kind: "tcp", host: "::1", port: 4444, rateLimit: 100 }],
    ["unix:/s,server,nowait,rate-limit=0", { kind: "unix", path: "/s", rateLimit: 0 }],
    ["unix:/s,server,nowait,rate-limit=5000", { kind: "unix", path: "/s", rateLimit: 5000 }],
  ];
  for (const [text, want] of good) {
    it(`parses '${text}'`, () => {
      assert.deepEqual(parse(text), want);
      assert.deepEqual(parse(format(parse(text))), want);
    });
  }
  const bad: [string, RegExp][] = [
    ["unix:/s", /must be server,nowait/],
    ["unix:/s,server", /must be server,nowait/],
    ["/s,server,nowait", /must start with unix: or tcp:/],
    ["tcp:localhost,server,nowait", /tcp needs <host>:<port>/],
    ["tcp:127.0.0.1:70000,server,nowait", /port/],
    ["unix:,server,nowait", /path/],
    ["unix:/s,server,nowait,wait=off", /unknown option 'wait'/],
    ["unix:/s,server,nowait,rate-limit=x", /unknown option 'rate-limit'/],
  ];
  for (const [text, message] of bad) {
    it(`rejects '${text}'`, () => {
      assert.throws(
        () => parse(text),
        (e: Error) =>
          e.message.startsWith("-qmp: ") &&
          message.test(e.message) &&
          e.message.includes("expected unix:<path>,server,nowait"),
      );
    });
  }
});
