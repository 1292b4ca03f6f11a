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
    bad({ ...minimal, machine: "pc" }, /^config\.machine: /);
  });

  it("takes a q35 VM with root ports and PCI devices, and names each misplaced one", () => {
    const q35 = {
      ...minimal,
      machine: "q35",
      rootPorts: [
        { id: "rp1", port: 1, addr: "0x2.0", chassis: 1 },
        { id: "rp2", port: 2, addr: "0x2.1" },
      ],
      drives: [
        { id: "root", file: "/images/root.img", readOnly: false, direct: false },
        { id: "data", file: "/images/data.img", readOnly: false, direct: false },
      ],
    };
    const disk = (drive: string, bus: string, addr: string) => ({
      driver: "virtio-blk-pci",
      id: drive,
      drive,
      bus,
      addr,
    });
    const config = normaliseConfig(
      { ...q35, devices: [disk("root", "pcie.0", "0x3.0"), disk("data", "rp2", "0x0.0")] },
      "a",
      paths,
    );
    assert.equal(config.machine, "q35");
    assert.deepEqual(
      config.rootPorts?.map((p) => p.id),
      ["rp1", "rp2"],
    );

    const bad = (input: Record<string, unknown>, pattern: RegExp): void => {
      assert.throws(
        () => normaliseConfig(input, "a", paths),
        (error: unknown) => error instanceof DaemonError && pattern.test(error.message),
      );
    };
    bad(
      { ...q35, devices: [disk("root", "pcie.0", "0x3.0"), disk("data", "pcie.0", "0x3.0")] },
      /^config\.devices\.1\.addr: pcie\.0 0x3\.0 is taken by 'root'$/,
    );
    bad(
      { ...q35, devices: [disk("root", "rp9", "0x0.0")], drives: [q35.drives[0]] },
      /^config\.devices\.0\.bus: unknown bus 'rp9'; expected pcie\.0 or a root port \(rp1, rp2\)$/,
    );
    bad(
      { ...q35, devices: [disk("root", "rp1", "0x1.0")], drives: [q35.drives[0]] },
      /^config\.devices\.0\.addr: a root port has one slot: addr 0x0\.0$/,
    );
    bad(
      { ...q35, devices: [disk("root", "pcie.0", "0x2.0")], drives: [q35.drives[0]] },
      /^config\.devices\.0\.addr: pcie\.0 0x2\.0 is taken by 'rp1'$/,
    );
    bad(
      {
        ...q35,
        rootPorts: [
          { id: "rp1", port: 1, addr: "0x2.0" },
          { id: "rp2", port: 1, addr: "0x4.0" },
        ],
      },
      /^config\.rootPorts\.1\.port: port 1 is root port 'rp1''s already$/,
    );
    bad(
      { ...q35, rootPorts: [{ id: "rp1", port: 1, addr: "0x2.0", chassis: 256 }] },
      /^config\.rootPorts\.0\.chassis: must be 0\.\.255$/,
    );
    bad(
      {
        ...q35,
        drives: [q35.drives[0]],
        devices: [{ driver: "virtio-blk-device", id: "root", drive: "root" }],
      },
      /^config\.devices\.0\.driver: 'virtio-blk-device' is a microvm \(virtio-mmio\) device; the q35 machine takes virtio-blk-pci$/,
    );
    bad(
      { ...minimal, rootPorts: q35.rootPorts },
      /^config\.rootPorts: root ports are the q35 machine's/,
    );
    bad(
      {
        ...minimal,
        devices: [
          { driver: "vfio-pci", id: "gpu", host: "0000:01:00.0", bus: "pcie.0", addr: "0x5.0" },
        ],
      },
      /^config\.devices\.0\.driver: 'vfio-pci' needs machine 'q35'/,
    );
    bad(
      {
        ...q35,
        devices: [{ driver: "vfio-pci", id: "gpu", host: "01:00.0", bus: "pcie.0", addr: "0x5.0" }],
      },
      /^config\.devices\.0\.host: must be a host PCI address like 0000:1a:00\.3$/,
    );
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
