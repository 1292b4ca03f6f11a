// What the guest sees of virtio-net, hot-plug and the balloon, with the
// probe guest's drivers (docs/probe-guest.md) on a real virga-vmm: frames
// both ways between the guest and a host tap, a disk hot-plugged, used and
// unplugged, a NIC's link coming up and going down, and the balloon giving
// memory back to the host.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { QmpClient } from "../../src/qmp/client";
import type { NetSlotInfo } from "../../src/vmm/device-types";
import { makeDisk, readSector, sectorPattern, tempDir } from "../support/disk";
import {
  connectQmp,
  probeArgs,
  requireKvmHost,
  waitForPath,
  withVmm,
  type VmmProcess,
} from "../support/guest";
import { makeTap, requireTaps } from "../support/tap";
import { ETHERTYPE, receiveOnTap, sendOnTap } from "../support/tap-frames";

const BOOT_MS = 30000;
const TEST = { timeout: 120000 };
const MIB = 1024 * 1024;

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(/(\d+)/.exec(line ?? "")?.[1] ?? 0) * 1024;
}

/** The open flags of the VMM's descriptor on `file` (from /proc/<pid>/fdinfo). */
function openFlags(pid: number, file: string): number | null {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== file) continue;
    } catch {
      continue;
    }
    const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
    return flags === null ? null : parseInt(flags[1] ?? "0", 8);
  }
  return null;
}

/** A probe guest at its prompt with QMP connected. */
async function withGuest(
  extra: string[],
  body: (vm: VmmProcess, qmp: QmpClient, dir: string) => Promise<void>,
  memory = "128",
): Promise<void> {
  const tmp = tempDir();
  try {
    const socketPath = path.join(tmp.dir, "qmp.sock");
    await withVmm(
      [
        ...probeArgs({ memory }),
        "-name",
        "guest-devices",
        "-qmp",
        `unix:${socketPath},server,nowait`,
        ...extra,
      ],
      async (vm) => {
        await vm.waitFor(/probe> /, BOOT_MS);
        await waitForPath(socketPath, vm);
        const qmp = await connectQmp(socketPath, vm);
        try {
          await body(vm, qmp, tmp.dir);
        } finally {
          qmp.close();
        }
      },
    );
  } finally {
    tmp.cleanup();
  }
}

/** Types a shell command; its answer (the next OK/ERR line) must match `answer`. */
async function shell(vm: VmmProcess, command: string, answer: RegExp): Promise<RegExpExecArray> {
  vm.send(command);
  const line = (await vm.waitFor(/(?:OK|ERR) [^\r\n]*(?=\r?\n)/, BOOT_MS))[0];
  const match = answer.exec(line);
  assert.ok(match !== null, `'${command}' answered '${line}', expected ${String(answer)}`);
  return match;
}

describe("devices as the guest sees them", () => {
  const taps: { name: string; remove: () => void }[] = [];
  before(() => {
    requireKvmHost();
    requireTaps();
  });
  after(() => {
    for (const tap of taps) tap.remove();
  });

  it("carries frames both ways between the guest's NIC and the host's tap", TEST, async () => {
    const tap = makeTap();
    taps.push(tap);
    const args = [
      "-netdev",
      `tap,id=n0,ifname=${tap.name}`,
      "-device",
      "virtio-net-device,netdev=n0",
    ];
    await withGuest(args, async (vm, qmp) => {
      const mac = /PROBE virtio-net 0 .* mac=([0-9a-f:]+) link=up/.exec(vm.serial.text)?.[1];
      assert.ok(mac !== undefined, "eth0 is up at boot");

      const received = await receiveOnTap(tap.name);
      await shell(vm, `net 0 send broadcast ${ETHERTYPE} 100 42`, /OK net send/);
      assert.deepEqual(await received(), {
        len: 100,
        dst: "ff:ff:ff:ff:ff:ff",
        src: mac,
        type: ETHERTYPE,
        seed: 42,
      });

      vm.send(`net 0 recv 10000 ${ETHERTYPE}`);
      await sendOnTap(tap.name, mac, 1400, 7);
      const got = await vm.waitFor(/OK net recv len=(\d+) dst=(\S+) src=\S+ type=(\S+) seed=(\S+)/);
      assert.deepEqual(got.slice(1, 5), ["1400", mac, ETHERTYPE, "7"]);

      const devices = (await qmp.execute("virga-query-devices")) as {
        net: NetSlotInfo[];
      };
      const eth0 = devices.net[0];
      assert.ok(eth0 !== undefined);
      assert.equal(eth0["driver-ready"], true);
      assert.ok(eth0["tx-frames"] >= 1 && eth0["rx-frames"] >= 1);
      // The probe's frame went on its own notification, as one plain (not TSO) frame.
      assert.ok(eth0["tx-notifications"] >= 1);
      assert.equal(eth0["tx-gso-frames"], 0);
      assert.equal(eth0["tx-blocked"], 0);
    });
  });

  it(
    "a hot-plugged NIC's link comes up, carries frames, and goes down after device_del",
    TEST,
    async () => {
      const tap = makeTap();
      taps.push(tap);
      await withGuest([], async (vm, qmp) => {
        await shell(vm, "net 1 info", /OK net info mac=\S+ link=down changes=0/);
        await qmp.execute("netdev_add", { id: "net-1", ifname: tap.name });
        await qmp.execute("device_add", { id: "net-1", driver: "virtio-net-mmio", addr: "0x1" });
        const info = await shell(vm, "net 1 info", /OK net info mac=(\S+) link=up changes=1/);
        const mac = info[1] ?? "";
        const received = await receiveOnTap(tap.name);
        await shell(vm, `net 1 send 02:56:b0:b0:b0:b0 ${ETHERTYPE} 64 5`, /OK net send/);
        assert.equal((await received()).src, mac);
        await qmp.execute("device_del", { id: "net-1" });
        await shell(vm, "net 1 info", /OK net info mac=\S+ link=down changes=2/);
      });
    },
  );

  it(
    "a hot-plugged disk is read and written by the guest, honours read-only and direct, and is gone after device_del",
    TEST,
    async () => {
      await withGuest([], async (vm, qmp, dir) => {
        const disk = makeDisk(dir, "hot.img", MIB);
        const readOnly = makeDisk(dir, "ro.img", MIB);
        await shell(vm, "blk 1 info", /OK blk info capacity=0 ro=0 changes=0/);
        await qmp.execute("blockdev-add", {
          "node-name": "drive-1",
          file: { driver: "file", filename: disk },
          cache: { direct: true },
          "read-only": false,
        });
        await qmp.execute("device_add", { id: "drive-1", driver: "virtio-blk-mmio", addr: "0x1" });
        await shell(vm, "blk 1 info", /OK blk info capacity=2048 ro=0 changes=1/);
        const pid = vm.child.pid ?? 0;
        const O_DIRECT = 0o40000;
        assert.ok(
          ((openFlags(pid, disk) ?? 0) & O_DIRECT) !== 0,
          "cache.direct opens with O_DIRECT",
        );
        await shell(vm, "blk 1 write 3 9", /OK blk write/);
        await shell(vm, "blk 1 flush", /OK blk flush/);
        assert.deepEqual(
          readSector(disk, 3),
          sectorPattern(3, 9),
          "the host reads what the guest wrote",
        );

        // lun 1 is slot 2 (vdc), as the seed says.
        await qmp.execute("blockdev-add", {
          "node-name": "drive-2",
          file: { driver: "file", filename: readOnly },
          "read-only": true,
        });
        await qmp.execute("device_add", { id: "drive-2", driver: "virtio-blk-mmio", lun: 1 });
        await shell(vm, "blk 2 info", /OK blk info capacity=2048/);
        await shell(vm, "blk 2 write 0 1", /ERR blk write status=1/);
        assert.ok(
          readSector(readOnly, 0).equals(Buffer.alloc(512)),
          "the read-only file is untouched",
        );

        await qmp.execute("device_del", { id: "drive-1" });
        await shell(vm, "blk 1 read 3", /ERR blk read status=1/);
        await shell(vm, "blk 1 info", /OK blk info capacity=0 ro=0 changes=2/);
        assert.equal(openFlags(pid, disk), null, "the file is closed");
      });
    },
  );

  it("the balloon gives touched memory back to the host and takes it again", TEST, async () => {
    await withGuest(
      ["-device", "virtio-balloon-device"],
      async (vm, qmp) => {
        assert.match(vm.serial.text, /PROBE virtio-balloon base=0xd0008000 irq=5/);
        const memory = 256 * MIB;
        assert.deepEqual(await qmp.execute("query-balloon"), { actual: memory });
        const pid = vm.child.pid ?? 0;
        await shell(vm, "mem touch 64", /OK mem touch/);
        const touched = rssBytes(pid);

        await qmp.execute("balloon", { value: memory - 64 * MIB });
        const changed = await qmp.waitForEvent("BALLOON_CHANGED", BOOT_MS);
        assert.deepEqual(changed.data, { actual: memory - 64 * MIB });
        assert.deepEqual(await qmp.execute("query-balloon"), { actual: memory - 64 * MIB });
        const inflated = rssBytes(pid);
        assert.ok(
          inflated < touched - 48 * MIB,
          `RSS ${touched >> 20} MiB -> ${inflated >> 20} MiB after inflating 64 MiB`,
        );
        await shell(vm, "balloon info", /OK balloon target=16384 actual=16384/);

        // The guest's statistics arrive a moment after they are asked for.
        let stats: Record<string, number> = {};
        for (let i = 0; i < 50 && stats["stat-free-memory"] === undefined; i++) {
          const info = (await qmp.execute("virga-query-balloon")) as {
            stats: Record<string, number>;
          };
          stats = info.stats;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok((stats["stat-total-memory"] ?? 0) > 200 * MIB, JSON.stringify(stats));
        assert.ok(
          (stats["stat-free-memory"] ?? memory) < (stats["stat-total-memory"] ?? 0) - 60 * MIB,
        );

        // Above boot memory means "all of it": the balloon empties.
        const before = qmp.events.length;
        await qmp.execute("balloon", { value: 8 * 1024 * MIB });
        await qmp.waitFor(
          (m) => m.event === "BALLOON_CHANGED" && qmp.events.length > before,
          BOOT_MS,
        );
        assert.deepEqual(await qmp.execute("query-balloon"), { actual: memory });
        await shell(vm, "balloon info", /OK balloon target=0 actual=0/);
      },
      "256",
    );
  });
});
