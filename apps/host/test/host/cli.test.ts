// virga-vmm as a command: bad flags exit 2 with one line naming the flag,
// and `npx virga-vmm` works from the repository root. No KVM needed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { tempDir, makeDisk } from "../support/disk";
import { repoRoot, vmmBin } from "../support/paths";

function run(args: string[]) {
  return spawnSync(vmmBin, args, {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 20000,
  });
}

describe("virga-vmm command line", () => {
  const tmp = tempDir();
  const disk = makeDisk(tmp.dir);
  const kernel = disk; // any existing file passes the flag checks
  const cases: [string, string[], RegExp][] = [
    [
      "an unknown flag",
      ["-kernel", kernel, "-vnc", ":1"],
      /^virga-vmm: -vnc: unknown flag; expected one of /,
    ],
    [
      "a bad -smp",
      ["-kernel", kernel, "-smp", "x"],
      /^virga-vmm: -smp: .*expected \[cpus=\]n\[,maxcpus=n\]\[,sockets=n\]\[,cores=n\]\[,threads=n\], got 'x'$/,
    ],
    ["a bad -m", ["-kernel", kernel, "-m", "12Q"], /^virga-vmm: -m: not a size; expected /],
    ["a missing -kernel", ["-smp", "1"], /^virga-vmm: -kernel: required; expected /],
    [
      "a missing kernel file",
      ["-kernel", "/nonexistent/vmlinux"],
      /^virga-vmm: -kernel: no such file; expected .*got '\/nonexistent\/vmlinux'$/,
    ],
    [
      "a missing disk file",
      [
        "-kernel",
        kernel,
        "-drive",
        "file=/nonexistent.img,id=d",
        "-device",
        "virtio-blk-device,drive=d",
      ],
      /^virga-vmm: -drive: no such file/,
    ],
    [
      "an unknown drive",
      ["-kernel", kernel, "-device", "virtio-blk-device,drive=nope"],
      /^virga-vmm: -device: unknown drive 'nope'/,
    ],
    [
      "-daemonize with -serial stdio",
      ["-kernel", kernel, "-daemonize", "-serial", "stdio"],
      /^virga-vmm: -daemonize: cannot be used with -serial stdio/,
    ],
    [
      "a machine not built yet",
      ["-machine", "pc", "-kernel", kernel],
      /^virga-vmm: -machine: machine 'pc' is not supported yet/,
    ],
    [
      "a virtio-mmio device on q35",
      [
        "-machine",
        "q35",
        "-kernel",
        kernel,
        "-drive",
        `file=${kernel},id=d0`,
        "-device",
        "virtio-blk-device,drive=d0",
      ],
      /^virga-vmm: -device: virtio-blk-device is a microvm \(virtio-mmio\) device; the q35 machine takes virtio-blk-pci,bus=pcie\.0,addr=<slot>/,
    ],
    [
      "a virtio-pci device on the microvm",
      ["-kernel", kernel, "-device", "virtio-balloon-pci,bus=pcie.0,addr=0x3"],
      /^virga-vmm: -device: virtio-balloon-pci needs -machine q35; the microvm takes virtio-balloon-device/,
    ],
    [
      "a virtio-pci device on a bus q35 does not have",
      [
        "-machine",
        "q35",
        "-kernel",
        kernel,
        "-drive",
        `file=${kernel},id=d0`,
        "-device",
        "virtio-blk-pci,drive=d0,bus=pcie.1,addr=0x3",
      ],
      /^virga-vmm: -device: unknown bus 'pcie\.1'; the q35 machine has pcie\.0/,
    ],
    [
      "two virtio-pci devices at one address",
      [
        "-machine",
        "q35",
        "-kernel",
        kernel,
        "-drive",
        `file=${kernel},id=d0`,
        "-device",
        "virtio-blk-pci,drive=d0,id=disk0,bus=pcie.0,addr=0x3",
        "-device",
        "virtio-balloon-pci,bus=pcie.0,addr=3",
      ],
      /^virga-vmm: -device: addr 0x3\.0 is taken by device 'disk0'/,
    ],
    [
      "a virtio-net device without its -netdev",
      ["-kernel", kernel, "-device", "virtio-net-device,netdev=n"],
      /^virga-vmm: -device: unknown netdev 'n'; expected /,
    ],
    [
      "a bad -qmp",
      ["-kernel", kernel, "-qmp", "unix:/tmp/x.sock"],
      /^virga-vmm: -qmp: the QMP socket must be server,nowait/,
    ],
    [
      "a bad -serial",
      ["-kernel", kernel, "-serial", "vc"],
      /^virga-vmm: -serial: unknown backend 'vc'/,
    ],
    [
      "a bad -boot-entry",
      ["-kernel", kernel, "-boot-entry", "efi"],
      /^virga-vmm: -boot-entry: unknown entry; expected linux64\|pvh/,
    ],
  ];
  for (const [label, args, message] of cases) {
    it(`exits 2 on ${label}, with one stderr line naming the flag`, () => {
      const result = run(args);
      assert.equal(result.status, 2, result.stderr);
      assert.equal(result.stdout, "");
      const lines = result.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0] ?? "", message);
    });
  }

  it("prints usage on -help and exits 0", () => {
    const result = run(["-help"]);
    assert.equal(result.status, 0);
    assert.match(result.stdout, /^usage: virga-vmm -kernel <path>/);
  });

  it("runs as `npx virga-vmm` from the repository root", () => {
    const result = spawnSync("npx", ["--no-install", "virga-vmm", "-version"], {
      cwd: repoRoot,
      encoding: "utf8",
      timeout: 60000,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, "virga-vmm 0.1.0\n");
  });

  it("cleans up", () => {
    tmp.cleanup();
  });
});
