import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DaemonError } from "./errors";
import { vmPaths } from "./run-dir";
import { normaliseConfig } from "./vm-input";

const paths = vmPaths("/run/vms/a");
const minimal = {
  kernel: "/images/probe.elf",
  smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
  memoryBytes: 128 * 1024 * 1024,
};

describe("normaliseConfig", () => {
  it("fills defaults and the fields virgad owns, replacing what a client put there", () => {
    const config = normaliseConfig(
      { ...minimal, serial: { kind: "stdio" }, pidfile: "/tmp/x.pid", daemonize: true },
      "a",
      paths,
    );
    assert.equal(config.machine, "microvm");
    assert.equal(config.name, "a");
    assert.deepEqual(config.serial, { kind: "socket", path: "/run/vms/a/console.sock" });
    assert.deepEqual(config.qmp, { kind: "unix", path: "/run/vms/a/qmp.sock", rateLimit: 0 });
    assert.equal(config.logFile, "/run/vms/a/log");
    assert.equal(config.daemonize, false);
    assert.equal("pidfile" in config, false);
    assert.deepEqual(config.drives, []);
  });

  it("names the bad field", () => {
    const bad = (input: unknown, pattern: RegExp): void => {
      assert.throws(
        () => normaliseConfig(input, "a", paths),
        (error: unknown) =>
          error instanceof DaemonError &&
          error.code === "BAD_REQUEST" &&
          pattern.test(error.message),
      );
    };
    bad({ ...minimal, memoryBytes: 1 }, /^config\.memoryBytes: /);
    bad(
      { ...minimal, smp: { ...minimal.smp, cpus: 2 } },
      /config\.smp: cpus \(2\) exceeds maxcpus/,
    );
    bad({ ...minimal, kernel: undefined }, /^config\.kernel: Required/);
    bad({ ...minimal, bogus: 1 }, /config: Unrecognized key.*bogus/);
    bad("nope", /^config: expected an object$/);
    bad(
      { ...minimal, machine: "q35" },
      /^config\.machine: 'q35' VMs are not managed by virgad yet/,
    );
    bad({ ...minimal, machine: "pc" }, /^config\.machine: /);
  });

  it("takes shared guest RAM, but no file for it", () => {
    assert.equal(normaliseConfig({ ...minimal, memShare: true }, "a", paths).memShare, true);
    assert.throws(
      () => normaliseConfig({ ...minimal, memPath: "/etc/passwd" }, "a", paths),
      (error: unknown) =>
        error instanceof DaemonError &&
        error.code === "BAD_REQUEST" &&
        /^config\.memPath: not accepted by virgad/.test(error.message),
    );
  });

  it("refuses a snapshot to restore: only vm.clone sets incoming", () => {
    assert.throws(
      () => normaliseConfig({ ...minimal, incoming: "file:/tmp/snap" }, "a", paths),
      (error: unknown) =>
        error instanceof DaemonError &&
        error.code === "BAD_REQUEST" &&
        /^config\.incoming: not accepted here/.test(error.message),
    );
  });
});
