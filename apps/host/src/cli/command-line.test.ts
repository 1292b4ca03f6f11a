import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCommandLine, usage } from "./command-line";
import { UsageError } from "./usage-error";

function config(argv: string[]) {
  const invocation = parseCommandLine(argv);
  if (invocation.action !== "run") assert.fail(`not a run: ${invocation.action}`);
  return invocation.config;
}

/** The seed's own command line (microvm, one disk, QMP, serial stdio). */
const SEED = [
  "-machine",
  "microvm",
  "-kernel",
  "/path/to/kernel",
  "-smp",
  "1",
  "-m",
  "1024",
  "-append",
  "console=ttyS0 pci=off reboot=k quiet panic=1 root=/dev/vda",
  "-drive",
  "file=/path/to/rootfs,id=rootfs,readonly=off,direct=off",
  "-device",
  "virtio-blk-device,drive=rootfs",
  "-qmp",
  "unix:/path/to/socket,server,nowait",
  "-serial",
  "stdio",
];

describe("command line", () => {
  it("parses the seed's microvm command line", () => {
    assert.deepEqual(config(SEED), {
      machine: "microvm",
      kernel: "/path/to/kernel",
      append: "console=ttyS0 pci=off reboot=k quiet panic=1 root=/dev/vda",
      bootEntry: "linux64",
      smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
      memoryBytes: 1024 * 1024 * 1024,
      drives: [{ id: "rootfs", file: "/path/to/rootfs", readOnly: false, direct: false }],
      devices: [{ driver: "virtio-blk-device", id: "rootfs", drive: "rootfs" }],
      serial: { kind: "stdio" },
      qmp: { kind: "unix", path: "/path/to/socket", rateLimit: 100 },
      daemonize: false,
      startPaused: false,
    });
  });

  it("applies defaults: 1 vCPU, 256 MiB, serial stdio, no disks", () => {
    const c = config(["-kernel", "k"]);
    assert.equal(c.memoryBytes, 256 * 1024 * 1024);
    assert.deepEqual(c.smp, { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 });
    assert.deepEqual(c.serial, { kind: "stdio" });
    assert.equal(c.append, "");
    assert.equal(c.qmp, undefined);
  });

  it("defaults serial to none with -daemonize", () => {
    assert.deepEqual(config(["-kernel", "k", "-daemonize", "-D", "/tmp/log"]).serial, {
      kind: "none",
    });
  });

  it("accepts double-dash flags and -D without a file", () => {
    const c = config(["--kernel", "k", "-D", "-S"]);
    assert.equal(c.logFile, null);
    assert.equal(c.startPaused, true);
  });

  it("fills block slots in -device order, whatever the -drive order", () => {
    const c = config([
      "-kernel",
      "k",
      "-device",
      "virtio-blk-device,drive=b",
      "-drive",
      "file=a.img,id=a",
      "-drive",
      "file=b.img,id=b",
      "-device",
      "virtio-blk-device,drive=a,id=second",
    ]);
    assert.deepEqual(
      c.devices.map((d) => d.id),
      ["b", "second"],
    );
  });

  const errors: [string, string[], RegExp][] = [
    ["missing -kernel", [], /^-kernel: required; expected <path/],
    [
      "unknown flag",
      ["-kernel", "k", "-vnc", ":0"],
      /^-vnc: unknown flag; expected one of -machine/,
    ],
    ["stray argument", ["-kernel", "k", "extra"], /unexpected argument 'extra'/],
    ["missing value at the end", ["-kernel"], /^-kernel: missing value/],
    [
      "repeated single flag",
      ["-kernel", "k", "-m", "128", "-m", "256"],
      /^-m: given more than once/,
    ],
    [
      "-daemonize with -serial stdio",
      ["-kernel", "k", "-daemonize", "-serial", "stdio", "-D", "l"],
      /^-daemonize: cannot be used with -serial stdio/,
    ],
    [
      "-daemonize with -D to stderr",
      ["-kernel", "k", "-daemonize", "-D"],
      /^-D: a daemon has no stderr/,
    ],
    [
      "unknown drive",
      ["-kernel", "k", "-device", "virtio-blk-device,drive=nope"],
      /^-device: unknown drive 'nope'/,
    ],
    [
      "drive used twice",
      [
        "-kernel",
        "k",
        "-drive",
        "file=a,id=a",
        "-device",
        "virtio-blk-device,drive=a,id=x",
        "-device",
        "virtio-blk-device,drive=a,id=y",
      ],
      /^-device: drive 'a' already used/,
    ],
    [
      "duplicate drive id",
      [
        "-kernel",
        "k",
        "-drive",
        "file=a,id=a",
        "-drive",
        "file=b,id=a",
        "-device",
        "virtio-blk-device,drive=a",
      ],
      /^-drive: duplicate id 'a'/,
    ],
    [
      "unattached drive",
      ["-kernel", "k", "-drive", "file=a,id=a"],
      /^-drive: drive 'a' is not attached/,
    ],
    [
      "seven disks",
      [
        "-kernel",
        "k",
        ...[0, 1, 2, 3, 4, 5, 6].flatMap((i) => [
          "-drive",
          `file=d${i},id=d${i}`,
          "-device",
          `virtio-blk-device,drive=d${i}`,
        ]),
      ],
      /^-device: at most 6 virtio-blk devices/,
    ],
    [
      "-S with a value-like token is a stray argument",
      ["-kernel", "k", "-S", "yes"],
      /unexpected argument 'yes'/,
    ],
  ];
  for (const [label, argv, message] of errors) {
    it(`rejects ${label}`, () => {
      assert.throws(
        () => parseCommandLine(argv),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      );
    });
  }

  it("answers -help and -version", () => {
    assert.deepEqual(parseCommandLine(["-help"]), { action: "help" });
    assert.deepEqual(parseCommandLine(["--version"]), { action: "version" });
    assert.match(usage(), /-smp \[cpus=\]n/);
  });
});
