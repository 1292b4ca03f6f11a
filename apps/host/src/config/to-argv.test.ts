import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "node:child_process";
import { VMM_BINARY } from "../vmm/vmm-binary";
import { toArgv } from "./to-argv";
import { vmConfigSchema, type VmConfig } from "./vm-config";

const MiB = 1024 * 1024;

/** What virga-vmm's own parser makes of argv (files are not checked with -print-config). */
function parse(argv: string[]): VmConfig {
  const result = spawnSync(VMM_BINARY, [...argv, "-print-config"], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as VmConfig;
}

const CONFIGS: VmConfig[] = [
  {
    machine: "microvm",
    kernel: "/k",
    append: "",
    bootEntry: "linux64",
    smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
    memoryBytes: 256 * MiB,
    drives: [],
    netdevs: [],
    devices: [],
    serial: { kind: "stdio" },
    daemonize: false,
    startPaused: false,
  },
  {
    name: "guest=web,1",
    machine: "microvm",
    kernel: "/boot/vmlinux",
    initrd: "/boot/initrd.img",
    append: "console=ttyS0 reboot=k -- init args",
    bootEntry: "pvh",
    smp: { cpus: 2, maxCpus: 8, sockets: 2, cores: 2, threads: 2 },
    memoryBytes: 1536 * MiB,
    memShare: true,
    memPath: "/dev/hugepages",
    drives: [
      { id: "root", file: "/img/a,b.img", readOnly: true, direct: true },
      { id: "data", file: "data.img", readOnly: false, direct: false },
    ],
    netdevs: [
      { id: "n0", ifname: "tap0" },
      { id: "n,1", fd: 7 },
    ],
    devices: [
      { driver: "virtio-blk-device", id: "vdb", drive: "data", slot: 5 },
      { driver: "virtio-net-device", id: "eth", netdev: "n,1", mac: "52:54:00:12:34:56" },
      { driver: "virtio-blk-device", id: "root", drive: "root" },
      { driver: "virtio-net-device", id: "n0", netdev: "n0", slot: 0 },
      { driver: "virtio-balloon-device", id: "b", deflateOnOom: true, freePageReporting: false },
    ],
    serial: { kind: "socket", path: "/run/vm/console.sock" },
    qmp: { kind: "unix", path: "/run/vm/qmp.sock", rateLimit: 0 },
    logFile: "/var/log/vm.log",
    daemonize: true,
    pidfile: "/run/vm/pid",
    startPaused: true,
  },
  {
    machine: "microvm",
    kernel: "k",
    append: "x",
    bootEntry: "linux64",
    smp: { cpus: 4, maxCpus: 4, sockets: 1, cores: 4, threads: 1 },
    memoryBytes: 2048 * MiB,
    drives: [],
    netdevs: [],
    devices: [],
    serial: { kind: "pty" },
    qmp: { kind: "tcp", host: "127.0.0.1", port: 4444, rateLimit: 100 },
    logFile: null,
    daemonize: false,
    startPaused: false,
  },
  {
    machine: "microvm",
    kernel: "k",
    append: "",
    bootEntry: "linux64",
    smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
    memoryBytes: 16 * MiB,
    drives: [],
    netdevs: [],
    devices: [],
    serial: { kind: "file", path: "/tmp/serial.log" },
    daemonize: false,
    startPaused: false,
  },
  {
    machine: "q35",
    kernel: "k",
    append: "",
    bootEntry: "linux64",
    smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
    memoryBytes: 256 * MiB,
    drives: [{ id: "d0", file: "/img/root.raw", readOnly: false, direct: false }],
    netdevs: [],
    devices: [
      {
        driver: "pcie-root-port",
        id: "pcie.1",
        port: 1,
        bus: "pcie.0",
        addr: "0x2.0",
        multifunction: true,
        chassis: 1,
      },
      {
        driver: "pcie-root-port",
        id: "pcie.2",
        port: 2,
        bus: "pcie.0",
        addr: "0x2.1",
        multifunction: false,
      },
      { driver: "virtio-blk-pci", id: "disk0", drive: "d0", bus: "pcie.1", addr: "0x0.0" },
      { driver: "vfio-pci", id: "edu", host: "0000:00:01.0", bus: "pcie.0", addr: "0x5.0" },
      {
        driver: "vfio-pci",
        id: "nic",
        sysfsdev: "/sys/bus/pci/devices/0000:02:00.0",
        bus: "pcie.0",
        addr: "0x6.0",
      },
    ],
    serial: { kind: "none" },
    daemonize: false,
    startPaused: false,
  },
];

describe("toArgv", () => {
  CONFIGS.forEach((config, index) => {
    it(`round-trips config ${index}`, () => {
      assert.deepEqual(parse(toArgv(config)), config);
    });
  });

  it("the control plane accepts vfio-pci devices as virga-vmm prints them", () => {
    const q35 = CONFIGS.find((c) => c.machine === "q35");
    assert.ok(q35 !== undefined);
    assert.deepEqual(vmConfigSchema.parse(parse(toArgv(q35))), q35);
  });

  it("round-trips what the command line parsed", () => {
    const argv = [
      "-kernel",
      "k",
      "-smp",
      "4,sockets=2",
      "-m",
      "1G",
      "-serial",
      "none",
      "-name",
      "n",
    ];
    const config = parse(argv);
    assert.deepEqual(parse(toArgv(config)), config);
  });
});
