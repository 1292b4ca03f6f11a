// The flags whose argument is a path, a word or nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { append } from "./append";
import * as bootEntry from "./boot-entry";
import { daemonize } from "./daemonize";
import { initrd } from "./initrd";
import { kernel } from "./kernel";
import * as logFile from "./log-file";
import * as name from "./name";
import { pidfile } from "./pidfile";
import { startPaused } from "./start-paused";

describe("flags with simple values", () => {
  const cases: [string, () => unknown, unknown][] = [
    ["-kernel path", () => kernel.parse("/boot/vmlinux"), "/boot/vmlinux"],
    ["-initrd path", () => initrd.parse("initrd.img"), "initrd.img"],
    ["-append cmdline", () => append.parse("console=ttyS0 reboot=k"), "console=ttyS0 reboot=k"],
    ["-append empty", () => append.parse(""), ""],
    ["-boot-entry linux64", () => bootEntry.parse("linux64"), "linux64"],
    ["-boot-entry pvh", () => bootEntry.parse("pvh"), "pvh"],
    ["-name plain", () => name.parse("vm1"), "vm1"],
    ["-name guest=", () => name.parse("guest=vm2"), "vm2"],
    ["-D with a file", () => logFile.parse("/tmp/vmm.log"), "/tmp/vmm.log"],
    ["-D alone", () => logFile.parse(null), null],
    ["-pidfile", () => pidfile.parse("/run/vm.pid"), "/run/vm.pid"],
    ["-daemonize", () => daemonize.parse(null), true],
    ["-S", () => startPaused.parse(null), true],
  ];
  for (const [label, run, want] of cases) {
    it(label, () => {
      assert.deepEqual(run(), want);
    });
  }

  const bad: [string, () => unknown, RegExp][] = [
    ["-kernel empty", () => kernel.parse(""), /^-kernel: empty path; expected <path/],
    ["-kernel missing", () => kernel.parse(null), /^-kernel: missing value/],
    [
      "-boot-entry bios",
      () => bootEntry.parse("bios"),
      /^-boot-entry: unknown entry; expected linux64\|pvh, got 'bios'/,
    ],
    ["-name empty", () => name.parse(""), /^-name: empty name/],
    ["-append too long", () => append.parse("x".repeat(2049)), /^-append: longer than 2048 bytes/],
    ["-pidfile empty", () => pidfile.parse(""), /^-pidfile: empty path/],
  ];
  for (const [label, run, message] of bad) {
    it(`rejects ${label}`, () => {
      assert.throws(run, (e: Error) => message.test(e.message));
    });
  }

  it("-name round-trips names that start with guest=", () => {
    assert.equal(name.parse(name.format("guest=odd")), "guest=odd");
  });
});
