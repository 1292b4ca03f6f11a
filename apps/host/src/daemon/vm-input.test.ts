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
    const port = (id: string, n: number, addr: string, chassis?: number) => ({
      driver: "pcie-root-port",
      id,
      port: n,
      bus: "pcie.0",
      addr,
      ...(chassis === undefined ? {} : { chassis }),
    });
    const rp1 = port("rp1", 1, "0x2.0", 1);
    const rp2 = port("rp2", 2, "0x2.1");
    const q35 = {
      ...minimal,
      machine: "q35",
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
      {
        ...q35,
        devices: [rp1, rp2, disk("root", "pcie.0", "0x3.0"), disk("data", "rp2", "0x0.0")],
      },
      "a",
      paths,
    );
    assert.equal(config.machine, "q35");
    assert.deepEqual(
      config.devices.map((d) => d.id),
      ["rp1", "rp2", "root", "data"],
    );

    const bad = (devices: unknown[], pattern: RegExp, base: object = q35): void => {
      assert.throws(
        () => normaliseConfig({ ...base, devices }, "a", paths),
        (error: unknown) => error instanceof DaemonError && pattern.test(error.message),
      );
    };
    bad(
      [disk("root", "pcie.0", "0x3.0"), disk("data", "pcie.0", "0x3.0")],
      /^config\.devices\.1\.addr: pcie\.0 0x3\.0 is taken by 'root'$/,
    );
    bad(
      [rp1, rp2, disk("root", "rp9", "0x0.0"), disk("data", "rp1", "0x0.0")],
      /^config\.devices\.2\.bus: unknown bus 'rp9'; expected pcie\.0 or a root port \(rp1, rp2\)$/,
    );
    bad(
      [rp1, disk("root", "rp1", "0x1.0"), disk("data", "pcie.0", "0x4.0")],
      /^config\.devices\.1\.addr: a root port has one slot: addr 0x0\.0$/,
    );
    bad(
      [rp1, disk("root", "pcie.0", "0x2.0"), disk("data", "pcie.0", "0x4.0")],
      /^config\.devices\.1\.addr: pcie\.0 0x2\.0 is taken by 'rp1'$/,
    );
    bad(
      [rp1, { ...rp2, port: 1 }, disk("root", "pcie.0", "0x3.0"), disk("data", "pcie.0", "0x4.0")],
      /^config\.devices\.1\.port: port 1 is root port 'rp1''s already$/,
    );
    bad(
      [
        port("rp1", 1, "0x2.0", 256),
        disk("root", "pcie.0", "0x3.0"),
        disk("data", "pcie.0", "0x4.0"),
      ],
      /^config\.devices\.0\.chassis: must be 0\.\.255$/,
    );
    bad(
      [
        { ...rp1, bus: "rp2" },
        rp2,
        disk("root", "pcie.0", "0x3.0"),
        disk("data", "pcie.0", "0x4.0"),
      ],
      /^config\.devices\.0\.bus: a root port sits on pcie\.0, not on 'rp2'/,
    );
    bad(
      [{ driver: "virtio-blk-device", id: "root", drive: "root" }, disk("data", "pcie.0", "0x4.0")],
      /^config\.devices\.0\.driver: 'virtio-blk-device' is a microvm \(virtio-mmio\) device; the q35 machine takes virtio-blk-pci$/,
    );
    bad([rp1], /^config\.devices\.0\.driver: 'pcie-root-port' needs machine 'q35'/, minimal);
    bad(
      [{ driver: "vfio-pci", id: "gpu", host: "0000:01:00.0", bus: "pcie.0", addr: "0x5.0" }],
      /^config\.devices\.0\.driver: 'vfio-pci' needs machine 'q35'/,
      minimal,
    );
    bad(
      [{ driver: "vfio-pci", id: "gpu", host: "01:00.0", bus: "pcie.0", addr: "0x5.0" }],
      /^config\.devices\.0\.host: must be a host PCI address like 0000:1a:00\.3$/,
      { ...q35, drives: [] },
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
