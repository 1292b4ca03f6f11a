// The device scenarios of docs/devices.md, seen from outside: a disk and a
// NIC hot-plugged through QMP into a running Debian guest, and the balloon.
// Each runs against a DeviceVmm (device-vmms.ts): virga-vmm, or QEMU as the
// reference that shows the scenario and the harness work. Not in the
// default suite: scenarios.ts says how they are switched on.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  openSync,
  readFileSync,
  readSync,
  closeSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import type { QmpClient } from "../../src/qmp/client";
import { withVmm } from "../support/guest";
import type { DeviceVmm } from "./device-vmms";
import {
  bootShell,
  fields,
  guestScenario,
  numberField,
  scenarioResult,
  sendScenario,
} from "./guest-scenario";
import { createTap, l1Receive, l1Send } from "./l1-net";
import type { Scenario } from "./scenarios";

const BOOT_MS = 120000;
const MIB = 1024 * 1024;

async function deviceDel(vmm: DeviceVmm, qmp: QmpClient, id: string): Promise<void> {
  await qmp.execute("device_del", { id });
  await vmm.whileUnplugging?.(qmp, id);
  // virga-vmm sends DEVICE_DELETED before its reply; QEMU's PCIe unplug
  // waits for the guest (pciehp's 5 s attention-button delay).
  await qmp.waitFor(
    (m) => m.event === "DEVICE_DELETED" && (m.data as { device?: string }).device === id,
    60000,
  );
}

/** The files the process holds open (/proc/PID/fd). */
function openFiles(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  return readdirSync(dir).flatMap((fd) => {
    try {
      return [readlinkSync(path.join(dir, fd))];
    } catch {
      return [];
    }
  });
}

function rssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

function readAt(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

const md5 = (data: Buffer): string => createHash("md5").update(data).digest("hex");
const PATTERN = `VIRGA-WRITE-OK\n${Array.from({ length: 1000 }, (_, i) => i + 1).join("\n")}\n`;

function hotPlugDisk(vmm: DeviceVmm): Scenario {
  return {
    name: `${vmm.label}: a hot-plugged disk shows the host's data, keeps the guest's writes, and is empty after device_del`,
    async run(scratch) {
      const qmpSocket = path.join(scratch, "qmp.sock");
      // vda is there from boot, so the hot-plugged disk is vdb under both VMMs.
      const boot = path.join(scratch, "boot.img");
      writeFileSync(boot, Buffer.alloc(MIB));
      // What the host wrote: a first line the guest prints, then bytes that
      // differ all the way through (an MD5 over 1 MiB catches a wrong block).
      const data = path.join(scratch, "data.img");
      const token = `VIRGA-HOST-DATA-${process.pid}-${Date.now()}`;
      const image = Buffer.alloc(8 * MIB);
      for (let i = 0; i < image.length; i++) image[i] = (i * 2654435761) >>> 24;
      image.write(`${token}\n`, 0, "latin1");
      writeFileSync(data, image);
      const args = vmm.args({ memMiB: 256, qmpSocket, disks: [{ file: boot, id: "boot" }] });
      await withVmm(
        args,
        async (vm) => {
          const qmp = await bootShell(vm, qmpSocket);
          await qmp.execute("blockdev-add", {
            "node-name": "disk1",
            driver: "raw",
            file: { driver: "file", filename: data },
          });
          await qmp.execute("device_add", vmm.diskDeviceAdd("disk1"));
          const seen = fields(await guestScenario(vm, "wait-disk /dev/vdb 60"));
          assert.equal(seen.sectors, String(image.length / 512));
          await vmm.checkDisk(qmp, "disk1", { file: data, size: image.length });

          const read = fields(await guestScenario(vm, "read-disk /dev/vdb 1024"));
          assert.equal(read.first, token);
          assert.equal(read.md5, md5(image.subarray(0, MIB)));

          // The guest writes at 4 MiB; the host sees it there, and its own data untouched.
          const wrote = await guestScenario(vm, "write /dev/vdb 4096");
          assert.match(wrote, /^\/dev\/vdb bytes=3908 md5=a9a8f33c94eab5279b70e645a5c41a8e$/);
          assert.equal(readAt(data, 4 * MIB, PATTERN.length).toString("latin1"), PATTERN);
          assert.equal(md5(readAt(data, 0, MIB)), md5(image.subarray(0, MIB)));

          await deviceDel(vmm, qmp, "disk1");
          const gone = await guestScenario(vm, "wait-disk-gone /dev/vdb 60");
          assert.match(gone, /^\/dev\/vdb (sectors=0|removed)$/);
          await vmm.releaseDisk(qmp, "disk1");
          await vmm.checkDisk(qmp, "disk1", null);
          const pid = vm.child.pid ?? 0;
          assert.ok(
            !openFiles(pid).includes(data),
            `${vmm.label} still holds ${data} open after device_del`,
          );
          // The guest runs on after the unplug.
          vm.send("echo after-unplug-$((6*7))");
          await vm.waitFor(/after-unplug-42/, BOOT_MS);
        },
        { command: vmm.command },
      );
    },
  };
}

function hotPlugNic(vmm: DeviceVmm, subnet: number): Scenario {
  return {
    name: `${vmm.label}: a hot-plugged NIC on a tap on a bridge in L1 carries ping and TCP both ways`,
    async run(scratch) {
      const qmpSocket = path.join(scratch, "qmp.sock");
      const l1 = `192.168.${subnet}.1`;
      const guest = `192.168.${subnet}.2`;
      const tap = createTap("vtap", `${l1}/24`, `vbr${subnet}`);
      try {
        await withVmm(
          vmm.args({ memMiB: 256, qmpSocket }),
          async (vm) => {
            const qmp = await bootShell(vm, qmpSocket);
            await qmp.execute("netdev_add", vmm.netdevAdd("net1", tap.tap));
            await qmp.execute("device_add", vmm.nicDeviceAdd("net1"));
            const up = fields(await guestScenario(vm, `net-up eth0 ${guest}/24 60`));
            assert.equal(up.carrier, "1");
            await vmm.checkNic(qmp, "net1", { tap: tap.tap, mac: up.mac ?? "" });

            const ping = await guestScenario(vm, `ping ${l1} 3`);
            assert.ok(numberField(ping, "received") >= 1, ping);

            const mib = 16;
            const receiver = l1Receive(5101);
            await receiver.listening;
            const sent = await guestScenario(vm, `io tcp-send ${l1} 5101 ${mib}`, BOOT_MS);
            assert.equal(numberField(sent, "bytes"), mib * MIB);
            assert.equal(Number((await receiver.result).bytes), mib * MIB);

            sendScenario(vm, "io tcp-recv 5102");
            await vm.waitFor(/VIRGA-IO tcp-recv listening/, BOOT_MS);
            const l1Sent = await l1Send(guest, 5102, mib);
            assert.equal(Number(l1Sent.bytes), mib * MIB);
            const got = await scenarioResult(vm, "io", BOOT_MS);
            assert.equal(numberField(got, "bytes"), mib * MIB);
            assert.equal(fields(got).from, l1);

            await deviceDel(vmm, qmp, "net1");
            assert.match(
              await guestScenario(vm, "wait-nic-down eth0 60"),
              /^eth0 (carrier=0|removed)$/,
            );
          },
          { command: vmm.command },
        );
      } finally {
        tap.remove();
      }
    },
  };
}

function balloon(vmm: DeviceVmm): Scenario {
  return {
    name: `${vmm.label}: the balloon at half of memory takes it from the guest and the VMM's RSS, and gives it back`,
    async run(scratch) {
      const qmpSocket = path.join(scratch, "qmp.sock");
      const memMiB = 512;
      await withVmm(
        vmm.args({ memMiB, qmpSocket, balloon: true }),
        async (vm) => {
          const qmp = await bootShell(vm, qmpSocket);
          const pid = vm.child.pid ?? 0;
          // Guest RAM the VMM has backed, and that the guest then frees.
          await guestScenario(vm, "touch-mem 300", BOOT_MS);
          const mem = async (): Promise<{ total: number; free: number }> => {
            const line = await guestScenario(vm, "mem");
            return { total: numberField(line, "total"), free: numberField(line, "free") };
          };
          const before = await mem();
          const rssBefore = rssKiB(pid);
          const actual = async (): Promise<number> =>
            ((await qmp.execute("query-balloon")) as { actual: number }).actual;
          assert.equal(await actual(), memMiB * MIB);

          const waitActual = async (bytes: number): Promise<void> => {
            const deadline = Date.now() + 90000;
            for (;;) {
              const now = await actual();
              if (Math.abs(now - bytes) <= MIB) return;
              if (Date.now() > deadline)
                throw new Error(`query-balloon actual ${now}, expected ${bytes} within 90 s`);
              await new Promise((r) => setTimeout(r, 1000));
            }
          };
          await qmp.execute("balloon", { value: (memMiB / 2) * MIB });
          await waitActual((memMiB / 2) * MIB);
          await vmm.checkBalloon(qmp, memMiB * MIB);
          const inflated = await mem();
          const rssInflated = rssKiB(pid);
          // In the L1 output (in-l1.js), to show the margin the checks below have.
          console.log(
            `${vmm.label} balloon to half: MemTotal ${before.total} -> ${inflated.total} kB, ` +
              `MemFree ${before.free} -> ${inflated.free} kB, RSS ${rssBefore} -> ${rssInflated} kB`,
          );
          // The balloon's 256 MiB leave the guest's accounting (no deflate-on-OOM)...
          assert.ok(
            inflated.total <= before.total - 200 * 1024,
            `MemTotal ${before.total} -> ${inflated.total} kB`,
          );
          assert.ok(
            inflated.free <= before.free - 150 * 1024,
            `MemFree ${before.free} -> ${inflated.free} kB`,
          );
          // ...and the VMM gives the pages back to L1.
          assert.ok(
            rssInflated <= rssBefore - 150 * 1024,
            `${vmm.label} RSS ${rssBefore} -> ${rssInflated} kB`,
          );

          await qmp.execute("balloon", { value: memMiB * MIB });
          await waitActual(memMiB * MIB);
          const deflated = await mem();
          assert.ok(
            deflated.total >= before.total - 8 * 1024,
            `MemTotal after deflating: ${deflated.total} kB, before ${before.total} kB`,
          );
        },
        { command: vmm.command },
      );
    },
  };
}

/** The three device scenarios against one VMM; `subnet` keeps L1 networks apart. */
export function deviceScenarios(vmm: DeviceVmm, subnet: number): Scenario[] {
  return [hotPlugDisk(vmm), hotPlugNic(vmm, subnet), balloon(vmm)];
}
