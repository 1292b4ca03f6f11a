// Snapshots of the Debian guest and restores from them (docs/snapshots.md),
// seen from outside: a guest with userspace up is saved (QMP `migrate
// file:`), a new virga-vmm restores it (`-incoming file:`), and the guest
// carries on — its shell, its clock, its timers, its disk; and a clone with
// a tap and a MAC of its own gets link and traffic with L1.
import assert from "node:assert/strict";
import { copyFileSync, statSync } from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import type { QmpClient } from "../../src/qmp/client";
import { connectQmp, waitForPath, withVmm, type VmmProcess } from "../support/guest";
import { linuxGuest, linuxKernelArgs } from "./guest-images";
import {
  bootShell,
  fields,
  guestScenario,
  numberField,
  scenarioResult,
  sendScenario,
  TickWatch,
} from "./guest-scenario";
import { createTap, l1Receive, l1Send } from "./l1-net";
import type { Scenario } from "./scenarios";

const BOOT_MS = 120000;
const MIB = 1024 * 1024;
const TICK_SECONDS = 0.5;

/** The Debian guest with a shell on its console: what both the template and its restore run. */
function machine(memMiB: number, devices: string[]): string[] {
  return [
    "-machine",
    "microvm",
    ...linuxKernelArgs({
      smp: "1",
      mem: String(memMiB),
      append: "console=ttyS0 quiet virga.action=stay",
    }),
    ...devices,
    "-serial",
    "stdio",
  ];
}

const qmpArgs = (socket: string): string[] => ["-qmp", `unix:${socket},server,nowait`];

interface MigrationInfo {
  status: string;
  "total-time"?: number;
  downtime?: number;
  ram?: { total: number; normal: number; duplicate: number };
}

/** Saves the running VM into `dir`; it is paused afterwards, as docs/snapshots.md says. */
async function snapshot(qmp: QmpClient, dir: string): Promise<MigrationInfo> {
  assert.deepEqual(await qmp.execute("migrate", { uri: `file:${dir}` }, 120000), {});
  const info = (await qmp.execute("query-migrate")) as MigrationInfo;
  assert.equal(info.status, "completed", JSON.stringify(info));
  assert.equal(((await qmp.execute("query-status")) as { status: string }).status, "paused");
  return info;
}

/** The restored VM's QMP says running. */
async function restoredQmp(vm: VmmProcess, socket: string): Promise<QmpClient> {
  await waitForPath(socket, vm, BOOT_MS);
  const qmp = await connectQmp(socket, vm, BOOT_MS);
  await qmp.execute("qmp_capabilities");
  assert.equal(((await qmp.execute("query-status")) as { status: string }).status, "running");
  return qmp;
}

function restoreCarriesOn(): Scenario {
  return {
    name: "a snapshot of the running guest restores in a new virga-vmm: its shell, clock, timers and disk carry on",
    async run(scratch) {
      // The guest's disk: an ext4 image (a copy of the root file system) it mounts.
      const disk = path.join(scratch, "disk.ext4");
      copyFileSync(linuxGuest.rootfs, disk);
      const devices = (file: string): string[] => [
        "-drive",
        `file=${file},id=disk,readonly=off,direct=off`,
        "-device",
        "virtio-blk-device,drive=disk",
      ];
      const template = path.join(scratch, "template");
      const token = `VIRGA-BEFORE-SNAPSHOT-${process.pid}-${Date.now()}`;
      const sourceSocket = path.join(scratch, "source.sock");
      let saved:
        { uptime: number; lastTick: number; tickUptime: number; slowest: number } | undefined;
      await withVmm(
        [...machine(256, devices(disk)), ...qmpArgs(sourceSocket), "-D"],
        async (vm) => {
          const qmp = await bootShell(vm, sourceSocket);
          await guestScenario(vm, `put-file /dev/vda before-snapshot.txt ${token}`);
          const ticks = new TickWatch(vm.serial);
          try {
            await guestScenario(vm, `ticker ${TICK_SECONDS}`);
            await ticks.waitFor(4, BOOT_MS);
            const uptime = numberField(await guestScenario(vm, "uptime"), "seconds");
            const info = await snapshot(qmp, template);
            assert.equal(info.ram?.total, 256 * MIB);
            // Whatever the console still shows arrived before the pause.
            await new Promise((r) => setTimeout(r, 300));
            const last = ticks.last();
            assert.ok(last !== undefined);
            const slowest = ticks.slowestInterval().uptime;
            saved = { uptime, lastTick: last.n, tickUptime: last.uptime, slowest };
          } finally {
            ticks.stop();
          }
          qmp.close();
        },
      );
      const before = saved;
      assert.ok(before !== undefined);
      // The disk as it was at the snapshot, as a clone would get its own copy.
      const cloneDisk = path.join(scratch, "clone-disk.ext4");
      copyFileSync(disk, cloneDisk);
      const memoryFile = statSync(path.join(template, "memory"));
      console.log(
        `snapshot of a 256 MiB Debian guest: memory file ${memoryFile.size} bytes, ${(memoryFile.blocks * 512) / MIB} MiB on disk`,
      );

      const restoredSocket = path.join(scratch, "restored.sock");
      const args = [
        ...machine(256, devices(cloneDisk)),
        ...qmpArgs(restoredSocket),
        "-incoming",
        `file:${template}`,
        "-D",
      ];
      await withVmm(args, async (vm) => {
        const ticks = new TickWatch(vm.serial);
        try {
          // The ticker the saved guest was running carries on from the next
          // number (a line the pause cut in two ends on this console).
          await ticks.waitFor(before.lastTick + 1, BOOT_MS);
          const qmp = await restoredQmp(vm, restoredSocket);
          qmp.close();
          const firstN = Math.min(...ticks.ticks.keys());
          const next = ticks.ticks.get(firstN);
          assert.ok(
            next !== undefined && firstN > before.lastTick && firstN <= before.lastTick + 2,
            `the saved console ended at tick ${before.lastTick}, the restored one began at ${firstN}`,
          );
          assert.ok(
            next.uptime > before.tickUptime,
            `tick ${next.n} at uptime ${next.uptime}, the one before the snapshot at ${before.tickUptime}`,
          );
          // The ticker's timers keep firing: three more after the first, every
          // number, none early, and none later than the slowest it was before
          // the snapshot allows (under L1's emulation its 0.5 s ticks come
          // every 0.5-2.5 s; twice that, plus a second). Checked before any
          // command is typed, whose echo could cut a tick's line. The first
          // tick after the restore is not bounded: guest time runs while the
          // restored VM first touches its pages, slow under nested paging in TCG.
          const latest = await ticks.waitFor(next.n + 3, BOOT_MS);
          const missing = [];
          for (let n = next.n; n <= latest.n; n++) if (!ticks.ticks.has(n)) missing.push(n);
          assert.deepEqual(missing, [], "ticks missing after the restore");
          const after = ticks.slowestInterval(next.n);
          const bound = 2 * before.slowest + 1;
          assert.ok(
            after.fastest >= TICK_SECONDS - 0.02 && after.uptime <= bound,
            `after the restore ticks came ${after.fastest.toFixed(2)} to ${after.uptime.toFixed(2)} s ` +
              `apart by the guest's clock; before it, at most ${before.slowest.toFixed(2)} s`,
          );
          // Its shell answers, and its clock goes on from the snapshot's.
          const uptime = numberField(await guestScenario(vm, "uptime"), "seconds");
          assert.ok(uptime > before.uptime, `uptime ${uptime} s after, ${before.uptime} s before`);
          // A timer armed after the restore fires, on time by the guest's clock.
          const slept = numberField(await guestScenario(vm, "sleep 1"), "took");
          assert.ok(slept >= 0.99 && slept < 5, `sleep 1 took ${slept} s of guest time`);
          // Written before the snapshot, read back from the disk itself.
          const file = await guestScenario(vm, "get-file /dev/vda before-snapshot.txt");
          assert.equal(file, `/mnt/vda/before-snapshot.txt: ${token}`);
          console.log(
            `restored: tick ${before.lastTick} -> ${next.n} (guest uptime ${before.tickUptime} -> ${next.uptime}), ` +
              `uptime ${before.uptime} -> ${uptime} s, sleep 1 took ${slept} s, ` +
              `tick intervals ${before.slowest.toFixed(2)} s at most before, ${after.fastest.toFixed(2)}-${after.uptime.toFixed(2)} s after`,
          );
        } finally {
          ticks.stop();
        }
      });
    },
  };
}

/** L1's view of who answers on a tap: the MAC its neighbour table holds for `address`. */
function l1Neighbour(tap: string, address: string): string {
  const out = execFileSync("ip", ["neigh", "show", "dev", tap, address], { encoding: "utf8" });
  return /lladdr ([0-9a-f:]+)/.exec(out)?.[1] ?? `(none: ${out.trim()})`;
}

function cloneOnItsOwnTap(subnet: number): Scenario {
  return {
    name: "a clone with another MAC gets link and traffic: its guest keeps the template's MAC, L1 sees the clone's",
    async run(scratch) {
      const template = path.join(scratch, "template");
      const templateTap = createTap("vtpl", `192.168.${subnet}.1/24`);
      let templateMac = "";
      const nic = (tap: string, mac?: string): string[] => [
        "-netdev",
        `tap,id=net0,ifname=${tap}`,
        "-device",
        `virtio-net-device,netdev=net0,id=net0${mac === undefined ? "" : `,mac=${mac}`}`,
      ];
      try {
        const socket = path.join(scratch, "template.sock");
        await withVmm(
          [...machine(256, nic(templateTap.tap)), ...qmpArgs(socket), "-D"],
          async (vm) => {
            const qmp = await bootShell(vm, socket);
            const up = fields(await guestScenario(vm, `net-up eth0 192.168.${subnet}.2/24`));
            templateMac = up.mac ?? "";
            await snapshot(qmp, template);
            qmp.close();
          },
        );
      } finally {
        templateTap.remove();
      }

      // The clone: its own tap, on a network of its own in L1, and its own MAC.
      const wireMac = "52:54:00:c1:0e:01";
      const l1 = `192.168.${subnet + 1}.1`;
      const guest = `192.168.${subnet + 1}.2`;
      const tap = createTap("vcln", `${l1}/24`);
      try {
        const socket = path.join(scratch, "clone.sock");
        const args = [
          ...machine(256, nic(tap.tap, wireMac)),
          ...qmpArgs(socket),
          "-incoming",
          `file:${template}`,
          "-D",
        ];
        await withVmm(args, async (vm) => {
          const qmp = await restoredQmp(vm, socket);
          const devices = (await qmp.execute("virga-query-devices")) as {
            net: {
              device: string | null;
              ifname: string | null;
              mac: string;
              "guest-mac"?: string;
              link: string;
            }[];
          };
          const slot = devices.net.find((n) => n.device === "net0");
          assert.notEqual(wireMac, templateMac);
          assert.deepEqual(
            {
              ifname: slot?.ifname,
              mac: slot?.mac,
              guestMac: slot?.["guest-mac"],
              link: slot?.link,
            },
            { ifname: tap.tap, mac: wireMac, guestMac: templateMac, link: "up" },
          );
          qmp.close();
          // The clone's guest still has the template's MAC (it is not told
          // another), and link on the new tap; L1 knows it by the clone's.
          const up = fields(await guestScenario(vm, `net-up eth0 ${guest}/24`));
          assert.deepEqual(
            { mac: up.mac, carrier: up.carrier },
            { mac: templateMac, carrier: "1" },
          );
          const ping = await guestScenario(vm, `ping ${l1} 2`);
          assert.ok(numberField(ping, "received") >= 1, ping);
          assert.equal(l1Neighbour(tap.tap, guest), wireMac);

          const mib = 8;
          const receiver = l1Receive(5201);
          await receiver.listening;
          const sent = await guestScenario(vm, `io tcp-send ${l1} 5201 ${mib}`, BOOT_MS);
          assert.equal(numberField(sent, "bytes"), mib * MIB);
          assert.equal(Number((await receiver.result).bytes), mib * MIB);
          sendScenario(vm, "io tcp-recv 5202");
          await vm.waitFor(/VIRGA-IO tcp-recv listening/, BOOT_MS);
          assert.equal(Number((await l1Send(guest, 5202, mib)).bytes), mib * MIB);
          const got = await scenarioResult(vm, "io", BOOT_MS);
          assert.equal(numberField(got, "bytes"), mib * MIB);
          console.log(
            `clone on ${tap.tap}: guest MAC ${templateMac}, wire MAC ${wireMac}; ` +
              `TCP guest -> L1 ${fields(sent)["MB/s"]} MB/s, L1 -> guest ${fields(got)["MB/s"]} MB/s`,
          );
        });
      } finally {
        tap.remove();
      }
    },
  };
}

/** Restore and clone scenarios; `subnet` and the one after it keep their L1 networks apart. */
export function snapshotScenarios(subnet: number): Scenario[] {
  return [restoreCarriesOn(), cloneOnItsOwnTap(subnet)];
}
