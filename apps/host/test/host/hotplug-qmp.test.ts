// Hot-plug and the balloon as QMP sees them (docs/devices.md), on a real
// virga-vmm: the seed's requests pasted as written, the backends' files and
// taps opened and closed in the VM process, and every mistake answered by
// name while the VM runs on with nothing changed. What the guest sees of the
// devices is in hotplug-guest.test.ts.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import type { QmpClient } from "../../src/qmp/client";
import { makeDisk, tempDir } from "../support/disk";
import { connectQmp, probeArgs, requireKvmHost, waitForPath, withVmm } from "../support/guest";
import { repoRoot } from "../support/paths";
import { makeTap, requireTaps } from "../support/tap";

const execFileAsync = promisify(execFile);
const BOOT_MS = 30000;
const TEST = { timeout: 90000 };
const PYTHON = "/usr/bin/python3";
const pythonClient = path.join(repoRoot, "apps", "host", "test", "clients", "qmp_client.py");

/** What the VM process holds open: the targets of /proc/<pid>/fd. */
function openFiles(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/${pid}/fd/${fd}`)];
    } catch {
      return [];
    }
  });
}

interface Slots {
  block: {
    slot: number;
    device: string | null;
    file: string | null;
    size: number;
    "read-only": boolean;
  }[];
  net: { slot: number; device: string | null; ifname: string | null; mac: string; link: string }[];
  backends: { block: { "node-name": string }[]; net: { id: string }[] };
}

async function slots(qmp: QmpClient): Promise<Slots> {
  return (await qmp.execute("virga-query-devices")) as Slots;
}

describe("hot-plug and balloon over QMP", () => {
  const taps: { name: string; remove: () => void }[] = [];
  before(() => {
    requireKvmHost();
    requireTaps();
  });
  after(() => {
    for (const tap of taps) tap.remove();
  });

  async function withQmpVm(
    extra: string[],
    body: (qmp: QmpClient, pid: number, dir: string) => Promise<void>,
  ): Promise<void> {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "qmp.sock");
      await withVmm(
        [
          ...probeArgs(),
          "-name",
          "hotplug-test",
          "-qmp",
          `unix:${socketPath},server,nowait`,
          ...extra,
        ],
        async (vm) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          await waitForPath(socketPath, vm);
          const qmp = await connectQmp(socketPath, vm);
          try {
            await body(qmp, vm.child.pid ?? 0, tmp.dir);
            assert.equal(vm.running, true, "the VM runs on");
          } finally {
            qmp.close();
          }
        },
      );
    } finally {
      tmp.cleanup();
    }
  }

  it(
    "the seed's microvm requests work as pasted; device_del closes the file and the tap",
    TEST,
    async () => {
      const tap = makeTap();
      taps.push(tap);
      await withQmpVm([], async (qmp, pid, dir) => {
        const image = makeDisk(dir, "block", 2 * 1024 * 1024);
        // As in the seed, with the path and tap name of this machine.
        const requests: [string, Record<string, unknown>][] = [
          [
            "blockdev-add",
            {
              "node-name": "drive-0",
              file: { driver: "file", filename: image },
              cache: { direct: true },
              "read-only": false,
            },
          ],
          ["device_add", { id: "drive-0", driver: "virtio-blk-mmio", addr: "0x1" }],
          ["netdev_add", { id: "net-0", ifname: tap.name }],
          ["device_add", { id: "net-0", driver: "virtio-net-mmio", addr: "0x0" }],
        ];
        for (const [name, args] of requests) assert.deepEqual(await qmp.execute(name, args), {});
        const plugged = await slots(qmp);
        assert.deepEqual(
          {
            device: plugged.block[1]?.device,
            file: plugged.block[1]?.file,
            size: plugged.block[1]?.size,
          },
          { device: "drive-0", file: image, size: 2 * 1024 * 1024 },
        );
        assert.deepEqual(
          {
            device: plugged.net[0]?.device,
            ifname: plugged.net[0]?.ifname,
            link: plugged.net[0]?.link,
          },
          { device: "net-0", ifname: tap.name, link: "up" },
        );
        assert.ok(openFiles(pid).includes(image), "the VMM holds the image open");
        assert.ok(openFiles(pid).includes("/dev/net/tun"), "the VMM holds the tap open");

        for (const id of ["drive-0", "net-0"]) {
          const before = qmp.messages.length;
          const reply = await qmp.request("device_del", { id });
          assert.deepEqual(reply.return, {});
          const sequence = qmp.messages.slice(before);
          assert.deepEqual(
            sequence.map((m) => ("event" in m ? m.event : "return" in m ? "return" : "?")),
            ["DEVICE_DELETED", "return"],
            "the event comes before the return, as the seed shows",
          );
          assert.deepEqual((sequence[0] as { data: unknown }).data, { device: id, path: id });
        }
        const unplugged = await slots(qmp);
        assert.deepEqual(
          { device: unplugged.block[1]?.device, size: unplugged.block[1]?.size },
          { device: null, size: 0 },
        );
        assert.equal(unplugged.net[0]?.link, "down");
        assert.deepEqual(unplugged.backends, { block: [], net: [] });
        assert.ok(!openFiles(pid).includes(image), "no fd left on the image");
        assert.ok(!openFiles(pid).includes("/dev/net/tun"), "no fd left on the tap");
        // The same names can be used again.
        await qmp.execute("netdev_add", { id: "net-0", ifname: tap.name });
        await qmp.execute("netdev_del", { id: "net-0" });
      });
    },
  );

  it(
    "answers every mistake by name; the VM runs on and nothing is half changed",
    TEST,
    async () => {
      const busy = makeTap();
      const free = makeTap();
      taps.push(busy, free);
      await withQmpVm([], async (qmp, _pid, dir) => {
        const image = makeDisk(dir, "a.img");
        await qmp.execute("blockdev-add", {
          "node-name": "disk-a",
          file: { driver: "file", filename: image },
        });
        await qmp.execute("device_add", { id: "disk-a", driver: "virtio-blk-mmio", addr: "0x2" });
        await qmp.execute("netdev_add", { id: "net-a", ifname: busy.name });
        await qmp.execute("blockdev-add", {
          "node-name": "disk-b",
          file: { driver: "file", filename: image },
        });
        const before = await slots(qmp);

        const cases: [string, Record<string, unknown>, string, RegExp][] = [
          [
            "blockdev-add",
            { "node-name": "disk-a", file: { driver: "file", filename: image } },
            "GenericError",
            /^node-name: 'disk-a' is already in use$/,
          ],
          [
            "blockdev-add",
            { "node-name": "x", file: { driver: "file", filename: path.join(dir, "missing") } },
            "GenericError",
            /^file\.filename: could not open '.*missing': No such file or directory$/,
          ],
          [
            "blockdev-add",
            { "node-name": "x", file: { driver: "file", filename: dir } },
            "GenericError",
            /^file\.filename: '.*' is a directory; expected a regular file or block device$/,
          ],
          [
            "blockdev-add",
            { "node-name": "x", file: "disk-a" },
            "GenericError",
            /^file: node references \('disk-a'\) are not supported/,
          ],
          [
            "blockdev-add",
            { "node-name": "x", file: { driver: "host_device", filename: image } },
            "GenericError",
            /^file\.driver: expected 'file'/,
          ],
          [
            "blockdev-add",
            { "node-name": "x", file: { driver: "file", filename: image }, discard: "unmap" },
            "GenericError",
            /^Parameter 'discard' is unexpected$/,
          ],
          [
            "netdev_add",
            { id: "net-b", ifname: "nosuchtap9" },
            "GenericError",
            /^ifname: tap 'nosuchtap9' does not exist/,
          ],
          [
            "netdev_add",
            { id: "net-b", ifname: busy.name },
            "GenericError",
            new RegExp(`^ifname: tap '${busy.name}' is busy`),
          ],
          [
            "netdev_add",
            { id: "net-a", ifname: free.name },
            "GenericError",
            /^id: 'net-a' is already in use$/,
          ],
          [
            "netdev_add",
            { id: "net-b", ifname: "a/b" },
            "GenericError",
            /^ifname: 'a\/b' is not an interface name/,
          ],
          [
            "netdev_add",
            { id: "net-b" },
            "GenericError",
            /needs exactly one of 'ifname'.*and 'fd'/,
          ],
          [
            "netdev_add",
            { id: "net-b", fd: "nothing" },
            "GenericError",
            /^fd: no file descriptor named 'nothing'/,
          ],
          [
            "device_add",
            { id: "disk-b", driver: "virtio-blk-mmio", addr: "0x2" },
            "GenericError",
            /^addr: block slot 0x2 \(vdc\) is occupied by 'disk-a'$/,
          ],
          [
            "device_add",
            { id: "disk-b", driver: "virtio-blk-mmio", addr: "0x6" },
            "GenericError",
            /^addr: 0x6 is out of range; the microvm has 6 block slots \(0x0\.\.0x5\)$/,
          ],
          [
            "device_add",
            { id: "disk-b", driver: "virtio-blk-mmio", lun: 5 },
            "GenericError",
            /^lun: lun 5 is out of range/,
          ],
          [
            "device_add",
            { id: "net-a", driver: "virtio-net-mmio", addr: "0x2" },
            "GenericError",
            /^addr: 0x2 is out of range; the microvm has 2 NIC slots \(0x0\.\.0x1\)$/,
          ],
          [
            "device_add",
            { id: "disk-b", driver: "virtio-net-mmio", addr: "0x0" },
            "GenericError",
            /^driver: 'virtio-net-mmio' needs a netdev backend, but 'disk-b' is a block backend/,
          ],
          [
            "device_add",
            { id: "net-a", driver: "virtio-blk-mmio" },
            "GenericError",
            /^driver: 'virtio-blk-mmio' needs a block backend, but 'net-a' is a netdev backend/,
          ],
          [
            "device_add",
            { id: "nothing", driver: "virtio-blk-mmio" },
            "DeviceNotFound",
            /^id: no backend 'nothing' \(add it with blockdev-add first\)$/,
          ],
          [
            "device_add",
            { id: "disk-a", driver: "virtio-blk-mmio", drive: "disk-b" },
            "GenericError",
            /^id: device 'disk-a' already exists$/,
          ],
          [
            "device_add",
            { id: "d", driver: "virtio-blk-pci", bus: "pcie.1", addr: "0x0" },
            "GenericError",
            /^driver: 'virtio-blk-pci' needs the standard machine/,
          ],
          [
            "device_add",
            { id: "disk-b", driver: "virtio-blk-mmio", bus: "pcie.1" },
            "GenericError",
            /^bus: the microvm has no buses/,
          ],
          [
            "device_add",
            { id: "disk-b", driver: "e1000" },
            "GenericError",
            /^driver: unknown device type 'e1000'/,
          ],
          [
            "device_add",
            { id: "net-a", driver: "virtio-net-mmio", mac: "01:00:5e:00:00:01" },
            "GenericError",
            /^mac: '01:00:5e:00:00:01' is not a unicast MAC/,
          ],
          [
            "device_add",
            { id: "net-a", driver: "virtio-net-mmio", addr: "0x1", mac: "52:54:00:12:34:56" },
            "GenericError",
            /^mac: NIC slot 0x1 has MAC 52:56:[0-9a-f:]+ fixed at boot/,
          ],
          [
            "device_add",
            { id: "disk-b", driver: "virtio-blk-mmio", addr: "vdb" },
            "GenericError",
            /^addr: expected a slot number such as "0x1"/,
          ],
          ["device_del", { id: "nothing" }, "DeviceNotFound", /^Device 'nothing' not found$/],
          [
            "blockdev-del",
            { "node-name": "disk-a" },
            "GenericError",
            /^node-name: 'disk-a' is attached to device 'disk-a'; device_del it first$/,
          ],
          [
            "blockdev-del",
            { "node-name": "nothing" },
            "DeviceNotFound",
            /^node-name: no block backend 'nothing'$/,
          ],
          ["netdev_del", { id: "nothing" }, "DeviceNotFound", /^id: no netdev 'nothing'$/],
          [
            "balloon",
            { value: 64 * 1024 * 1024 },
            "DeviceNotActive",
            /^No balloon device has been activated$/,
          ],
          ["balloon", { value: 0 }, "GenericError", /^Parameter 'value'/],
          ["query-balloon", {}, "DeviceNotActive", /^No balloon device has been activated$/],
        ];
        for (const [name, args, errorClass, desc] of cases) {
          const reply = await qmp.request(name, args);
          const label = `${name} ${JSON.stringify(args)}`;
          assert.equal(reply.error?.class, errorClass, `${label}: ${JSON.stringify(reply)}`);
          assert.match(reply.error.desc, desc, label);
        }
        assert.deepEqual(await slots(qmp), before, "nothing changed");
        const status = (await qmp.execute("query-status")) as { status: string };
        assert.equal(status.status, "running");
      });
    },
  );

  it(
    "netdev_add fd= takes a tap passed with getfd; a tap without vnet headers is refused and kept",
    TEST,
    async () => {
      const tap = makeTap();
      const plain = makeTap();
      taps.push(tap, plain);
      const tmp = tempDir();
      try {
        const socketPath = path.join(tmp.dir, "qmp.sock");
        await withVmm([...probeArgs(), "-qmp", `unix:${socketPath},server,nowait`], async (vm) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          await waitForPath(socketPath, vm);
          type Step = { reply: { return?: unknown; error?: { class: string; desc: string } } };
          const { stdout } = await execFileAsync(
            PYTHON,
            [
              pythonClient,
              socketPath,
              JSON.stringify([
                { execute: "getfd", arguments: { fdname: "tapfd" }, tap: tap.name },
                { execute: "netdev_add", arguments: { id: "net-0", fd: "tapfd" } },
                { execute: "device_add", arguments: { id: "net-0", driver: "virtio-net-mmio" } },
                {
                  execute: "getfd",
                  arguments: { fdname: "plain" },
                  tap: plain.name,
                  vnet_hdr: false,
                },
                { execute: "netdev_add", arguments: { id: "net-1", fd: "plain" } },
                { execute: "closefd", arguments: { fdname: "plain" } },
                { execute: "netdev_add", arguments: { id: "net-1", fd: "tapfd" } },
                { execute: "virga-query-devices" },
              ]),
            ],
            { timeout: 20000 },
          );
          const steps = stdout
            .trim()
            .split("\n")
            .slice(1)
            .map((l) => JSON.parse(l) as Step);
          assert.deepEqual(
            steps.slice(0, 4).map((s) => s.reply.return),
            [{}, {}, {}, {}],
          );
          assert.match(
            steps[4]?.reply.error?.desc ?? "",
            /^fd: tap 'plain' was opened without IFF_VNET_HDR$/,
          );
          assert.deepEqual(steps[5]?.reply.return, {}, "the refused descriptor stayed with getfd");
          assert.match(
            steps[6]?.reply.error?.desc ?? "",
            /^fd: no file descriptor named 'tapfd'/,
            "consumed",
          );
          const devices = steps[7]?.reply.return as Slots;
          assert.deepEqual(
            {
              device: devices.net[0]?.device,
              ifname: devices.net[0]?.ifname,
              link: devices.net[0]?.link,
            },
            { device: "net-0", ifname: tap.name, link: "up" },
          );
        });
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "NIC slots have stable locally administered MACs, or the one given at boot",
    TEST,
    async () => {
      const tap = makeTap();
      taps.push(tap);
      const macs: string[][] = [];
      for (const extra of [
        [],
        [],
        [
          "-netdev",
          `tap,id=n0,ifname=${tap.name}`,
          "-device",
          "virtio-net-device,netdev=n0,mac=52:54:00:ab:cd:ef,addr=0x1",
        ],
      ]) {
        await withQmpVm(extra, async (qmp) => {
          macs.push((await slots(qmp)).net.map((n) => n.mac));
        });
      }
      assert.deepEqual(macs[0], macs[1], "the same name gives the same MACs");
      assert.match(macs[0]?.[0] ?? "", /^52:56:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:00$/);
      assert.match(macs[0]?.[1] ?? "", /:01$/);
      assert.deepEqual(macs[2], [macs[0]?.[0], "52:54:00:ab:cd:ef"]);
    },
  );

  it(
    "a -netdev tap that does not exist ends the start with the netdev named (exit 1)",
    TEST,
    async () => {
      await withVmm(
        [
          ...probeArgs(),
          "-netdev",
          "tap,id=n9,ifname=nosuchtap9",
          "-device",
          "virtio-net-device,netdev=n9",
        ],
        async (vm) => {
          const exit = await vm.waitForExit();
          assert.equal(exit.code, 1);
          assert.match(vm.stderr, /^virga-vmm: error: netdev n9: tap 'nosuchtap9' does not exist/m);
        },
      );
    },
  );
});
