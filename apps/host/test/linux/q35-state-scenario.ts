// Snapshot, restore and live migration of a q35 Debian guest (docs/q35.md,
// "Snapshots and live migration"), seen from outside: the guest's
// virtio-blk-pci disk and virtio-net-pci NIC are in use (MSI-X on) when it
// is saved; the restored guest's shell answers, it reads its disk and
// pings L1; then a second disk is hot-plugged into its root port, and it
// migrates live to another virga-vmm (whose command line has that disk in
// the port, and whose NIC is a second tap on the same L1 bridge), and does
// all of that again there, the hot-plugged disk included.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { QmpClient } from "../../src/qmp/client";
import { connectQmp, waitForPath, withVmm, type VmmProcess } from "../support/guest";
import { makeTap } from "../support/tap";
import { linuxKernelArgs } from "./guest-images";
import { bootShell, fields, guestScenario } from "./guest-scenario";
import { createTap } from "./l1-net";
import type { Scenario } from "./scenarios";

const BOOT_MS = 120000;

interface MigrationInfo {
  status: string;
  "total-time"?: number;
  downtime?: number;
  "error-desc"?: string;
}

async function qmpAt(vm: VmmProcess, socket: string): Promise<QmpClient> {
  await waitForPath(socket, vm, BOOT_MS);
  const qmp = await connectQmp(socket, vm, BOOT_MS);
  await qmp.execute("qmp_capabilities");
  return qmp;
}

async function status(qmp: QmpClient): Promise<string> {
  return ((await qmp.execute("query-status")) as { status: string }).status;
}

/** The guest's shell answers, its disk reads `token` from the device, and it pings `l1`. */
async function carriesOn(vm: VmmProcess, token: string, l1: string, where: string): Promise<void> {
  vm.send(`echo ${where}-$((6*7))`);
  await vm.waitFor(new RegExp(`${where}-42`), BOOT_MS);
  const read = fields(await guestScenario(vm, "read-disk /dev/vda 1024"));
  assert.equal(read.first, token, `${where}: the disk's first line`);
  const ping = await guestScenario(vm, `ping ${l1} 5`);
  assert.ok(Number(fields(ping).received) >= 1, `${where}: ${ping}`);
}

export function q35StateScenario(subnet: number): Scenario {
  return {
    name: "on -machine q35 a Debian guest using virtio-blk-pci and virtio-net-pci is snapshotted, restored and migrated live with a disk hot-plugged into a root port: shell, disks and NIC carry on",
    async run(scratch) {
      const l1 = `192.168.${subnet}.1`;
      const bridge = `vq35s${process.pid % 10000}`;
      const first = createTap("vqsa", `${l1}/24`, bridge);
      // A bridge takes the lowest MAC of its ports unless given one: the
      // guest's ARP entry for L1 would go stale when the ports change.
      const bridgeMac = readFileSync(`/sys/class/net/${bridge}/address`, "utf8").trim();
      execFileSync("ip", ["link", "set", "dev", bridge, "address", bridgeMac]);
      let second: { name: string; remove: () => void } | undefined;
      const data = path.join(scratch, "data.img");
      const token = `VIRGA-Q35-STATE-${process.pid}`;
      const image = Buffer.alloc(8 * 1024 * 1024);
      image.write(`${token}\n`, 0, "latin1");
      writeFileSync(data, image);
      const plugged = path.join(scratch, "plugged.img");
      const pluggedToken = `VIRGA-Q35-PLUGGED-${process.pid}`;
      const pluggedImage = Buffer.alloc(8 * 1024 * 1024);
      pluggedImage.write(`${pluggedToken}\n`, 0, "latin1");
      writeFileSync(plugged, pluggedImage);
      // `withPlugged`: the disk hot-plugged into pcie.1, as a destination's command line gives it.
      const machine = (
        tap: string,
        socket: string,
        incoming?: string,
        withPlugged = false,
      ): string[] => [
        "-machine",
        "q35",
        ...linuxKernelArgs({
          smp: "2",
          mem: "256",
          append: "console=ttyS0 quiet virga.action=stay",
        }),
        "-drive",
        `file=${data},id=data`,
        "-device",
        "virtio-blk-pci,drive=data,id=disk0,bus=pcie.0,addr=0x3",
        "-netdev",
        `tap,id=net0,ifname=${tap}`,
        "-device",
        `virtio-net-pci,netdev=net0,id=nic0,bus=pcie.0,addr=0x4,mac=52:54:00:00:01:${subnet.toString(16)}`,
        "-device",
        "pcie-root-port,id=pcie.1,port=0x1,bus=pcie.0,addr=0x5",
        ...(withPlugged
          ? [
              "-drive",
              `file=${plugged},id=plugged`,
              "-device",
              "virtio-blk-pci,drive=plugged,id=disk1,bus=pcie.1,addr=0x0",
            ]
          : []),
        "-serial",
        "stdio",
        "-qmp",
        `unix:${socket},server,nowait`,
        ...(incoming === undefined ? [] : ["-incoming", incoming]),
        "-D",
      ];
      try {
        const template = path.join(scratch, "template");
        const sourceSocket = path.join(scratch, "source.sock");
        await withVmm(machine(first.tap, sourceSocket), async (vm) => {
          // The first QMP client starts the control plane: slow on a busy L1.
          const qmp = await bootShell(vm, sourceSocket, 60000);
          await guestScenario(vm, "wait-disk /dev/vda 60");
          const up = fields(await guestScenario(vm, `net-up eth0 192.168.${subnet}.2/24 60`));
          assert.equal(up.carrier, "1");
          await carriesOn(vm, token, l1, "booted");
          assert.deepEqual(await qmp.execute("migrate", { uri: `file:${template}` }, BOOT_MS), {});
          const info = (await qmp.execute("query-migrate")) as MigrationInfo;
          assert.equal(info.status, "completed", JSON.stringify(info));
          assert.equal(await status(qmp), "paused");
          qmp.close();
        });

        const restoredSocket = path.join(scratch, "restored.sock");
        const destSocket = path.join(scratch, "dest.sock");
        const uri = `unix:${path.join(scratch, "migration.sock")}`;
        await withVmm(machine(first.tap, restoredSocket, `file:${template}`), async (restored) => {
          const qmp = await qmpAt(restored, restoredSocket);
          assert.equal(await status(qmp), "running");
          await carriesOn(restored, token, l1, "restored");
          // A disk into the root port (pciehp brings it up as vdb): the migration carries it.
          await qmp.execute("blockdev-add", {
            "node-name": "drive-1",
            file: { driver: "file", filename: plugged },
            cache: { direct: false },
            "read-only": false,
          });
          await qmp.execute("device_add", {
            driver: "virtio-blk-pci",
            id: "disk1",
            drive: "drive-1",
            bus: "pcie.1",
            addr: "0x0",
          });
          await guestScenario(restored, "wait-disk /dev/vdb 60");
          const read = fields(await guestScenario(restored, "read-disk /dev/vdb 1024"));
          assert.equal(read.first, pluggedToken, "restored: the hot-plugged disk's first line");

          // The destination's NIC: another port of the same bridge.
          second = makeTap("vqsb");
          execFileSync("ip", ["link", "set", second.name, "master", bridge]);
          await withVmm(machine(second.name, destSocket, uri, true), async (dest) => {
            const destQmp = await qmpAt(dest, destSocket);
            assert.equal(await status(destQmp), "inmigrate");
            assert.deepEqual(await qmp.execute("migrate", { uri }), {});
            const deadline = Date.now() + BOOT_MS;
            let info: MigrationInfo;
            for (;;) {
              info = (await qmp.execute("query-migrate")) as MigrationInfo;
              if (["completed", "failed", "cancelled"].includes(info.status)) break;
              if (Date.now() > deadline) throw new Error(`migration still ${JSON.stringify(info)}`);
              await new Promise((r) => setTimeout(r, 50));
            }
            assert.equal(info.status, "completed", JSON.stringify(info));
            assert.deepEqual(await restored.waitForExit(BOOT_MS), { code: 0, signal: null });
            await destQmp.waitForEvent("RESUME", BOOT_MS);
            // The source's port goes (the bridge stays): the bridge learns the guest on the new one.
            execFileSync("ip", ["link", "del", first.tap]);
            await carriesOn(dest, token, l1, "migrated");
            const wrote = await guestScenario(dest, "write /dev/vda 4096");
            assert.match(wrote, /^\/dev\/vda bytes=3908 md5=a9a8f33c94eab5279b70e645a5c41a8e$/);
            const again = fields(await guestScenario(dest, "read-disk /dev/vdb 1024"));
            assert.equal(again.first, pluggedToken, "migrated: the hot-plugged disk's first line");
            const wrotePlugged = await guestScenario(dest, "write /dev/vdb 4096");
            assert.match(
              wrotePlugged,
              /^\/dev\/vdb bytes=3908 md5=a9a8f33c94eab5279b70e645a5c41a8e$/,
            );
            console.log(
              `q35 migration (unix) of a 256 MiB Debian guest: total ${info["total-time"]} ms, downtime ${info.downtime} ms`,
            );
            dest.send("poweroff -f");
            assert.deepEqual(await dest.waitForExit(BOOT_MS), { code: 0, signal: null });
            destQmp.close();
          });
          qmp.close();
        });
        for (const file of [data, plugged]) {
          const written = readFileSync(file).subarray(4 * 1024 * 1024, 4 * 1024 * 1024 + 14);
          assert.equal(written.toString("latin1"), "VIRGA-WRITE-OK", file);
        }
      } finally {
        second?.remove();
        first.remove();
      }
    },
  };
}
