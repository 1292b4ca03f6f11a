import assert from "node:assert/strict";
import { it } from "node:test";
import { toNativeConfig } from "./native-config";
import { testConfig } from "./testing/fake-native-vm";

it("maps VmConfig to NativeVmConfig with disks in slot order", () => {
  const native = toNativeConfig(
    testConfig({
      append: "console=ttyS0",
      initrd: "/i",
      drives: [
        { id: "a", file: "/a.img", readOnly: true, direct: false },
        { id: "b", file: "/b.img", readOnly: false, direct: true },
      ],
      devices: [
        { driver: "virtio-blk-device", id: "vb", drive: "b" },
        { driver: "virtio-blk-device", id: "va", drive: "a" },
      ],
    }),
  );
  assert.deepEqual(native, {
    memoryBytes: 256 * 1024 * 1024,
    cpus: 2,
    maxCpus: 4,
    sockets: 2,
    cores: 2,
    threads: 1,
    kernel: "/k",
    initrd: "/i",
    cmdline: "console=ttyS0",
    bootEntry: "linux64",
    serial: { kind: "pty" },
    disks: [
      { slot: 0, id: "vb", path: "/b.img", readOnly: false, direct: true },
      { slot: 1, id: "va", path: "/a.img", readOnly: true, direct: false },
    ],
  });
});
