import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { format, parse } from "./device";

describe("-device", () => {
  const good: [string, object][] = [
    [
      "virtio-blk-device,drive=rootfs",
      { driver: "virtio-blk-device", drive: "rootfs", id: "rootfs" },
    ],
    ["virtio-blk-device,drive=d0,id=vda", { driver: "virtio-blk-device", drive: "d0", id: "vda" }],
    ["driver=virtio-blk-device,id=v,drive=d", { driver: "virtio-blk-device", drive: "d", id: "v" }],
  ];
  for (const [text, want] of good) {
    it(`parses '${text}'`, () => {
      assert.deepEqual(parse(text), want);
      assert.deepEqual(parse(format(parse(text))), want);
    });
  }
  const bad: [string, RegExp][] = [
    ["virtio-net-device,netdev=n0", /virtio-net-device needs -netdev, not supported yet/],
    [
      "virtio-blk-pci,drive=d,bus=pcie.0,addr=0",
      /unknown option 'bus'|virtio-blk-pci needs -machine q35/,
    ],
    ["virtio-blk-pci,drive=d", /virtio-blk-pci needs -machine q35, not supported yet/],
    ["e1000,drive=d", /unknown device 'e1000'/],
    ["virtio-blk-device", /missing drive=/],
    ["virtio-blk-device,drive=d,serial=x", /unknown option 'serial'/],
    ["virtio-blk-device,drive=d,drive=e", /'drive' given twice/],
  ];
  for (const [text, message] of bad) {
    it(`rejects '${text}'`, () => {
      assert.throws(
        () => parse(text),
        (e: Error) =>
          e.message.startsWith("-device: ") &&
          message.test(e.message) &&
          e.message.includes("expected virtio-blk-device,drive="),
      );
    });
  }
});
