import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../usage-error";
import { parse, format } from "./smp";

const topo = (cpus: number, maxCpus: number, sockets: number, cores: number, threads: number) => ({
  cpus,
  maxCpus,
  sockets,
  cores,
  threads,
});

describe("-smp", () => {
  const good: [string, ReturnType<typeof topo>][] = [
    ["1", topo(1, 1, 1, 1, 1)],
    ["4", topo(4, 4, 4, 1, 1)],
    ["cpus=2", topo(2, 2, 2, 1, 1)],
    ["2,maxcpus=4", topo(2, 4, 4, 1, 1)],
    ["4,sockets=2,cores=2", topo(4, 4, 2, 2, 1)],
    ["4,sockets=2", topo(4, 4, 2, 2, 1)],
    ["8,sockets=2,cores=2,threads=2", topo(8, 8, 2, 2, 2)],
    ["cpus=1,maxcpus=8,sockets=2,cores=2,threads=2", topo(1, 8, 2, 2, 2)],
    ["maxcpus=2", topo(2, 2, 2, 1, 1)],
    ["254", topo(254, 254, 254, 1, 1)],
    ["2,cores=2", topo(2, 2, 1, 2, 1)],
  ];
  for (const [text, want] of good) {
    it(`parses '${text}'`, () => {
      assert.deepEqual(parse(text), want);
    });
  }

  const bad: [string, RegExp][] = [
    ["x", /cpus is not a number/],
    ["", /cpus is not a number/],
    ["0", /must be 1\.\.254/],
    ["255", /must be 1\.\.254/],
    ["4,maxcpus=2", /cpus \(4\) exceeds maxcpus \(2\)/],
    ["4,sockets=3", /sockets\*cores\*threads \(3\*1\*1=3\) must equal maxcpus \(4\)/],
    ["4,sockets=2,cores=2,threads=2", /must equal maxcpus/],
    ["4,foo=1", /unknown option 'foo'/],
    ["4,cpus=4", /'cpus' given twice/],
    ["4,2", /'2' needs a key/],
    ["-1", /not a number/],
  ];
  for (const [text, message] of bad) {
    it(`rejects '${text}' naming -smp and the expected form`, () => {
      assert.throws(
        () => parse(text),
        (error: unknown) => {
          assert.ok(error instanceof UsageError);
          assert.match(error.message, /^-smp: /);
          assert.match(error.message, message);
          assert.ok(
            error.message.includes(
              "expected [cpus=]n[,maxcpus=n][,sockets=n][,cores=n][,threads=n]",
            ),
          );
          assert.ok(error.message.endsWith(`got '${text}'`));
          return true;
        },
      );
    });
  }

  it("formats back to the same topology", () => {
    for (const [text] of good) {
      const value = parse(text);
      assert.deepEqual(parse(format(value)), value);
    }
  });

  it("rejects a missing value", () => {
    assert.throws(() => parse(null), /-smp: missing value/);
  });
});
