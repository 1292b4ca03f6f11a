// Snapshots and live migration of a q35 VM (docs/q35.md, "Snapshots and
// live migration") on this machine's KVM, with the probe guest driving a
// virtio-blk-pci disk by MSI-X: after a restore or a migration the disk
// still answers by its MSI-X vector (so its configuration space, MSI-X
// table and KVM routes came back), its BARs are where they were, and the
// guest's counter carries on; a command line that describes another
// machine is refused by name. With root ports: the disk behind one and a
// disk hot-plugged into another come back in their slots, the slots'
// registers and hot-plug interrupt with them; a VM whose unplug is still
// pending is refused before it is paused.
import assert from "node:assert/strict";
import path from "node:path";
import { before, describe, it } from "node:test";
import type { QmpClient } from "../../src/qmp/client";
import { makeDisk, readSector, sectorPattern, tempDir } from "../support/disk";
import { freePort } from "../support/ports";
import {
  connectQmp,
  requireKvmHost,
  waitForPath,
  withVmm,
  type VmmProcess,
} from "../support/guest";
import { probeGuest } from "../support/paths";
import { pciFunctions, refusedWith, slot } from "../support/pci";
import { makeTap, requireTaps } from "../support/tap";

const BOOT_MS = 30000;
const TEST = { timeout: 120000 };
// A request answered by its MSI-X vector takes milliseconds; one whose
// interrupt never came ends with the probe's 5 s timer instead.
const INTERRUPT_MS = 2000;

/** The probe on q35 with a disk at 00:03.0 and a balloon at 00:04.0. */
function q35Machine(disk: string, extra: readonly string[] = []): string[] {
  return [
    "-machine",
    "q35",
    "-kernel",
    probeGuest,
    "-smp",
    "2",
    "-m",
    "128",
    "-drive",
    `file=${disk},id=d0`,
    "-device",
    "virtio-blk-pci,drive=d0,id=disk0,bus=pcie.0,addr=0x3",
    "-device",
    "virtio-balloon-pci,id=balloon0,bus=pcie.0,addr=0x4",
    ...extra,
  ];
}

async function shell(vm: VmmProcess, command: string, answer: RegExp): Promise<RegExpExecArray> {
  vm.send(command);
  const line = (await vm.waitFor(/(?:OK|ERR) [^\r\n]*(?=\r?\n)/, BOOT_MS))[0];
  const match = answer.exec(line);
  assert.ok(match !== null, `'${command}' answered '${line}', expected ${String(answer)}`);
  return match;
}

/** A disk request that must be answered by its MSI-X vector, not the probe's timeout. */
async function byInterrupt(vm: VmmProcess, command: string, answer: RegExp): Promise<void> {
  const start = Date.now();
  await shell(vm, command, answer);
  const ms = Date.now() - start;
  assert.ok(ms < INTERRUPT_MS, `'${command}' took ${ms} ms: its MSI-X interrupt did not arrive`);
}

/** BAR 0 and BAR 1 of the disk as the guest reads them. */
async function diskBars(vm: VmmProcess): Promise<string[]> {
  const before = vm.serial.lines(/^pci 00:03\.0 bar/).length;
  vm.send("pci show 00:03.0");
  await vm.waitFor(/OK pci show/, BOOT_MS);
  return vm.serial.lines(/^pci 00:03\.0 bar/).slice(before);
}

async function qmpOf(vm: VmmProcess, socket: string): Promise<QmpClient> {
  await waitForPath(socket, vm);
  return connectQmp(socket, vm);
}

async function status(qmp: QmpClient): Promise<string> {
  return ((await qmp.execute("query-status")) as { status: string }).status;
}

interface MigrationInfo {
  status: string;
  "error-desc"?: string;
  "total-time"?: number;
  downtime?: number;
}

async function migrationEnded(qmp: QmpClient): Promise<MigrationInfo> {
  const deadline = Date.now() + 60000;
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as MigrationInfo;
    if (["completed", "failed", "cancelled"].includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration still ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The last `count N` line the guest printed. */
function lastCount(vm: VmmProcess): number {
  return Math.max(...vm.serial.lines(/^count \d+/).map((l) => Number(l.slice(6))));
}

describe("q35 snapshots and live migration", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "a restored q35 guest carries on: its counter, its BARs, and its disk answering by MSI-X",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const template = path.join(tmp.dir, "template");
        const first = path.join(tmp.dir, "first.sock");
        let bars: string[] = [];
        let counted = 0;
        await withVmm(q35Machine(disk, ["-qmp", `unix:${first},server,nowait`]), async (vm) => {
          await vm.waitFor(/PROBE virtio-blk 0 pci=00:03\.0 capacity=2048 ro=0/, BOOT_MS);
          await vm.waitFor(/probe> /, BOOT_MS);
          await byInterrupt(vm, "blk 0 write 4 21", /OK blk write/);
          bars = await diskBars(vm);
          vm.send("count");
          await vm.waitFor(/count 5\r?\n/, BOOT_MS);
          const qmp = await qmpOf(vm, first);
          assert.deepEqual(await qmp.execute("migrate", { uri: `file:${template}` }), {});
          assert.equal(((await qmp.execute("query-migrate")) as MigrationInfo).status, "completed");
          assert.equal(await status(qmp), "paused");
          qmp.close();
          counted = lastCount(vm);
        });
        assert.deepEqual(bars, [
          "pci 00:03.0 bar0 0xc00c0000 size=0x4000 mem32",
          "pci 00:03.0 bar1 0xc00c4000 size=0x1000 mem32",
        ]);

        // Two clones from the template at once, each with its own QMP socket.
        const clones = ["a", "b"].map((name) => path.join(tmp.dir, `${name}.sock`));
        await Promise.all(
          clones.map((socket) =>
            withVmm(
              q35Machine(disk, [
                "-qmp",
                `unix:${socket},server,nowait`,
                "-incoming",
                `file:${template}`,
              ]),
              async (vm) => {
                const next = await vm.waitFor(/count (\d+)\r?\n/, BOOT_MS);
                assert.equal(Number(next[1]), counted + 1, "the counter continues");
                vm.send("x"); // any key stops count
                await vm.waitFor(/OK count/, BOOT_MS);
                await byInterrupt(vm, "blk 0 verify 4 21", /OK blk verify/);
                assert.deepEqual(await diskBars(vm), bars);
                const qmp = await qmpOf(vm, socket);
                assert.equal(await status(qmp), "running");
                qmp.close();
              },
            ),
          ),
        );
        // A restored guest writes its disk (by MSI-X) and the host file holds it.
        const socket = path.join(tmp.dir, "third.sock");
        await withVmm(
          q35Machine(disk, [
            "-qmp",
            `unix:${socket},server,nowait`,
            "-incoming",
            `file:${template}`,
          ]),
          async (vm) => {
            await vm.waitFor(/count \d+\r?\n/, BOOT_MS);
            vm.send("x");
            await vm.waitFor(/OK count/, BOOT_MS);
            await byInterrupt(vm, "blk 0 write 6 22", /OK blk write/);
            await shell(vm, "blk 0 flush", /OK blk flush/);
            vm.send("poweroff");
            assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          },
        );
        assert.deepEqual(readSector(disk, 6), sectorPattern(6, 22));
      } finally {
        tmp.cleanup();
      }
    },
  );

  for (const transport of ["unix", "tcp"] as const) {
    it(
      `a q35 guest migrates over ${transport} while it writes memory; at the destination its disk answers by MSI-X`,
      TEST,
      async () => {
        const tmp = tempDir();
        try {
          const disk = makeDisk(tmp.dir);
          const uri =
            transport === "unix"
              ? `unix:${path.join(tmp.dir, "migration.sock")}`
              : `tcp:127.0.0.1:${await freePort()}`;
          const sourceSocket = path.join(tmp.dir, "source.sock");
          const destSocket = path.join(tmp.dir, "dest.sock");
          await withVmm(
            q35Machine(disk, ["-qmp", `unix:${sourceSocket},server,nowait`]),
            async (source) => {
              await source.waitFor(/probe> /, BOOT_MS);
              await byInterrupt(source, "blk 0 write 7 31", /OK blk write/);
              await withVmm(
                q35Machine(disk, ["-qmp", `unix:${destSocket},server,nowait`, "-incoming", uri]),
                async (dest) => {
                  const sourceQmp = await qmpOf(source, sourceSocket);
                  const destQmp = await qmpOf(dest, destSocket);
                  try {
                    assert.equal(await status(destQmp), "inmigrate");
                    source.send("mem dirty 32 10");
                    await source.waitFor(/dirty 5\r?\n/, BOOT_MS);
                    assert.deepEqual(await sourceQmp.execute("migrate", { uri }), {});
                    const info = await migrationEnded(sourceQmp);
                    assert.equal(info.status, "completed", JSON.stringify(info));
                    assert.deepEqual(await source.waitForExit(BOOT_MS), {
                      code: 0,
                      signal: null,
                    });
                    await destQmp.waitForEvent("RESUME", BOOT_MS);
                    const last = Math.max(
                      ...source.serial.lines(/^dirty \d+/).map((l) => Number(l.slice(6))),
                    );
                    await dest.waitFor(new RegExp(`dirty ${last + 1}\\r?\\n`), BOOT_MS);
                    console.log(
                      `q35 migration ${transport}: total ${info["total-time"]} ms, downtime ${info.downtime} ms`,
                    );
                    dest.send("x");
                    await dest.waitFor(/OK mem dirty pass=\d+ pos=\d+/, BOOT_MS);
                    await shell(dest, "mem check", /^OK mem check$/);
                    await byInterrupt(dest, "blk 0 verify 7 31", /OK blk verify/);
                    await byInterrupt(dest, "blk 0 write 8 32", /OK blk write/);
                    await shell(dest, "blk 0 flush", /OK blk flush/);
                    assert.equal(await status(destQmp), "running");
                  } finally {
                    sourceQmp.close();
                    destQmp.close();
                  }
                },
              );
            },
          );
          assert.deepEqual(readSector(disk, 8), sectorPattern(8, 32));
        } finally {
          tmp.cleanup();
        }
      },
    );
  }

  it(
    "a restore or a destination whose command line describes another machine is refused by name",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const template = path.join(tmp.dir, "template");
        const socket = path.join(tmp.dir, "qmp.sock");
        await withVmm(q35Machine(disk, ["-qmp", `unix:${socket},server,nowait`]), async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          const qmp = await qmpOf(vm, socket);
          await qmp.execute("migrate", { uri: `file:${template}` });
          qmp.close();
        });
        const restore = (args: string[]): Promise<string> =>
          withVmm([...args, "-incoming", `file:${template}`], async (vm) => {
            const exit = await vm.waitForExit();
            assert.equal(exit.code, 1, vm.stderr);
            return vm.stderr.trim();
          });
        const moved = q35Machine(disk).map((a) => a.replace("addr=0x3", "addr=0x5"));
        assert.match(
          await restore(moved),
          /^virga-vmm: error: the command line does not describe the machine saved in .*template: pcie\.0 addr 0x3\.0: the snapshot has virtio-blk-pci 'disk0' \(a 1 MiB disk\), the command line nothing; pcie\.0 addr 0x5\.0: the snapshot has nothing, the command line virtio-blk-pci 'disk0' \(a 1 MiB disk\)$/,
        );
        const kind = q35Machine(disk).map((a) =>
          a.replace("virtio-balloon-pci,id=balloon0", "virtio-blk-pci,drive=d1,id=disk1"),
        );
        kind.push("-drive", `file=${makeDisk(tmp.dir, "d1.img")},id=d1`);
        assert.match(
          await restore(kind),
          /pcie\.0 addr 0x4\.0: the snapshot has virtio-balloon-pci 'balloon0', the command line virtio-blk-pci 'disk1' \(a 1 MiB disk\)$/,
        );
        assert.match(
          await restore(["-machine", "microvm", "-kernel", probeGuest, "-smp", "2", "-m", "128"]),
          /: -machine: the snapshot is a q35, the command line a microvm$/,
        );

        // A destination without the balloon: the source is told why and runs on.
        const uri = `unix:${path.join(tmp.dir, "migration.sock")}`;
        const sourceSocket = path.join(tmp.dir, "source.sock");
        await withVmm(
          q35Machine(disk, ["-qmp", `unix:${sourceSocket},server,nowait`]),
          async (source) => {
            await source.waitFor(/probe> /, BOOT_MS);
            const noBalloon = q35Machine(disk).slice(0, -2);
            await withVmm([...noBalloon, "-incoming", uri], async (dest) => {
              const qmp = await qmpOf(source, sourceSocket);
              await waitForPath(uri.slice("unix:".length), dest);
              await qmp.execute("migrate", { uri });
              const info = await migrationEnded(qmp);
              assert.equal(info.status, "failed");
              assert.match(
                info["error-desc"] ?? "",
                /the destination's command line does not describe the source's machine: pcie\.0 addr 0x4\.0: the source has virtio-balloon-pci 'balloon0', the command line nothing$/,
              );
              assert.equal(await status(qmp), "running");
              assert.equal((await dest.waitForExit(BOOT_MS)).code, 1);
              qmp.close();
            });
            await byInterrupt(source, "blk 0 write 1 1", /OK blk write/);
          },
        );
      } finally {
        tmp.cleanup();
      }
    },
  );
});

/** Root ports at 00:02.0 (the boot disk in its slot) and 00:05.0 (empty), as the command line has them. */
function portedMachine(disk: string, extra: readonly string[] = []): string[] {
  return [
    "-machine",
    "q35",
    "-kernel",
    probeGuest,
    "-smp",
    "2",
    "-m",
    "128",
    "-device",
    "pcie-root-port,id=pcie.1,port=0x1,bus=pcie.0,addr=0x2",
    "-device",
    "pcie-root-port,id=pcie.2,port=0x2,bus=pcie.0,addr=0x5",
    "-drive",
    `file=${disk},id=d0`,
    "-device",
    "virtio-blk-pci,drive=d0,id=disk0,bus=pcie.1,addr=0x0",
    ...extra,
  ];
}

/** What a destination gives for the disk hot-plugged into pcie.2 (as virgad does). */
function hotPlugged(disk: string): string[] {
  return [
    "-drive",
    `file=${disk},id=d1`,
    "-device",
    "virtio-blk-pci,drive=d1,id=disk1,bus=pcie.2,addr=0x0",
  ];
}

/**
 * Hot-plugs `disk` into pcie.2 as pciehp would take it: the slot armed, the
 * device added, its events cleared and the slot powered, the link's event
 * left pending. Returns the slot's registers then.
 */
async function plugIntoSecondPort(
  vm: VmmProcess,
  qmp: QmpClient,
  disk: string,
): Promise<Awaited<ReturnType<typeof slot>>> {
  await slot(vm, "00:05.0", "arm");
  await qmp.execute("blockdev-add", {
    "node-name": "drive-1",
    file: { driver: "file", filename: disk },
    cache: { direct: false },
    "read-only": false,
  });
  await qmp.execute("device_add", {
    driver: "virtio-blk-pci",
    id: "disk1",
    drive: "drive-1",
    bus: "pcie.2",
    addr: "0x0",
  });
  await slot(vm, "00:05.0", "ack");
  const powered = await slot(vm, "00:05.0", "on");
  assert.deepEqual(powered, { ctl: 0x11e9, sta: 0x140, link: 0x3011, irqs: 2 });
  return powered;
}

/** The functions the probe's scan finds. */
async function scan(vm: VmmProcess): Promise<string[]> {
  const before = vm.serial.lines(/^pci /).length;
  vm.send("pci");
  await vm.waitFor(/OK pci \d+/, BOOT_MS);
  return pciFunctions(vm.serial.lines(/^pci /).slice(before));
}

const PORTED_SCAN = [
  "00:00.0 8086:29c0 060000",
  "00:02.0 1b36:000c 060400",
  "00:05.0 1b36:000c 060400",
  "01:00.0 1af4:1042 018000",
  "02:00.0 1af4:1042 018000",
];

/**
 * At the restored or migrated guest: both disks are where they were, the
 * boot disk answers by MSI-X, the hot-plugged slot's registers (its link
 * event still pending) and interrupt count are as the guest left them, and
 * the port's MSI still reaches the guest: device_del presses the button
 * (one more interrupt), and the guest powering the slot off ends it.
 */
async function checkPorted(
  vm: VmmProcess,
  qmp: QmpClient,
  slotState: Awaited<ReturnType<typeof slot>>,
  sector: number,
  seed: number,
): Promise<void> {
  assert.deepEqual(await scan(vm), PORTED_SCAN);
  assert.deepEqual(await slot(vm, "00:05.0"), slotState);
  await byInterrupt(vm, `blk 0 verify ${sector} ${seed}`, /OK blk verify/);
  await byInterrupt(vm, `blk 0 write ${sector + 1} ${seed + 1}`, /OK blk write/);
  await shell(vm, "blk 0 flush", /OK blk flush/);
  await slot(vm, "00:05.0", "ack");
  assert.deepEqual(await qmp.execute("device_del", { id: "disk1" }), {});
  assert.equal(
    (await slot(vm, "00:05.0")).irqs,
    slotState.irqs + 1,
    "the port's MSI after the restore",
  );
  await slot(vm, "00:05.0", "off");
  await qmp.waitForEvent("DEVICE_DELETED", BOOT_MS);
}

describe("q35 snapshots and live migration with root ports", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "a snapshot of a guest with a disk behind a root port and one hot-plugged into another restores with both in their slots; a command line without the hot-plugged one is refused by port and address",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const plugged = makeDisk(tmp.dir, "plugged.img");
        const template = path.join(tmp.dir, "template");
        const first = path.join(tmp.dir, "first.sock");
        let slotState = { ctl: 0, sta: 0, link: 0, irqs: 0 };
        await withVmm(portedMachine(disk, ["-qmp", `unix:${first},server,nowait`]), async (vm) => {
          await vm.waitFor(/PROBE virtio-blk 0 pci=01:00\.0 capacity=2048 ro=0/, BOOT_MS);
          await vm.waitFor(/probe> /, BOOT_MS);
          await byInterrupt(vm, "blk 0 write 4 21", /OK blk write/);
          const qmp = await qmpOf(vm, first);
          slotState = await plugIntoSecondPort(vm, qmp, plugged);
          assert.deepEqual(await scan(vm), PORTED_SCAN);
          assert.deepEqual(await qmp.execute("migrate", { uri: `file:${template}` }), {});
          assert.equal(((await qmp.execute("query-migrate")) as MigrationInfo).status, "completed");
          qmp.close();
        });

        const socket = path.join(tmp.dir, "restored.sock");
        await withVmm(
          portedMachine(disk, [
            ...hotPlugged(plugged),
            "-qmp",
            `unix:${socket},server,nowait`,
            "-incoming",
            `file:${template}`,
          ]),
          async (vm) => {
            const qmp = await qmpOf(vm, socket);
            assert.equal(await status(qmp), "running");
            await checkPorted(vm, qmp, slotState, 4, 21);
            qmp.close();
            vm.send("poweroff");
            assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          },
        );
        assert.deepEqual(readSector(disk, 5), sectorPattern(5, 22));

        const refusal = (args: string[]): Promise<string> =>
          withVmm([...args, "-incoming", `file:${template}`], async (vm) => {
            assert.equal((await vm.waitForExit()).code, 1, vm.stderr);
            return vm.stderr.trim();
          });
        assert.match(
          await refusal(portedMachine(disk)),
          /: bus pcie\.2 \(the root port at pcie\.0 addr 0x5\.0\) addr 0x0\.0: the snapshot has virtio-blk-pci 'disk1' \(a 1 MiB disk\), the command line nothing$/,
        );
        assert.match(
          await refusal(
            portedMachine(disk, hotPlugged(plugged)).map((a) =>
              a.replace("port=0x2,", "port=0x3,"),
            ),
          ),
          /: pcie\.0 addr 0x5\.0: the snapshot has pcie-root-port 'pcie\.2' \(port 2\), the command line pcie-root-port 'pcie\.2' \(port 3\)$/,
        );
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "a guest with disks behind root ports migrates over unix; a pending unplug refuses a snapshot and a migration before the pause, and the VM runs on",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const disk = makeDisk(tmp.dir);
        const plugged = makeDisk(tmp.dir, "plugged.img");
        const uri = `unix:${path.join(tmp.dir, "migration.sock")}`;
        const sourceSocket = path.join(tmp.dir, "source.sock");
        const destSocket = path.join(tmp.dir, "dest.sock");
        await withVmm(
          portedMachine(disk, ["-qmp", `unix:${sourceSocket},server,nowait`]),
          async (source) => {
            await source.waitFor(/probe> /, BOOT_MS);
            await byInterrupt(source, "blk 0 write 7 31", /OK blk write/);
            const sourceQmp = await qmpOf(source, sourceSocket);
            // A pending unplug first: refused by name while the guest runs on.
            await sourceQmp.execute("device_del", { id: "disk0" });
            const pending =
              /^the VM cannot be saved or migrated: device 'disk0' in root port 'pcie\.1' is being unplugged; wait for DEVICE_DELETED$/;
            await refusedWith(
              sourceQmp,
              "migrate",
              { uri: `file:${path.join(tmp.dir, "snap")}` },
              pending,
            );
            await refusedWith(sourceQmp, "migrate", { uri }, pending);
            assert.equal(await status(sourceQmp), "running");
            source.send("count");
            await source.waitFor(/count 2\r?\n/, BOOT_MS);
            source.send("x");
            await source.waitFor(/OK count/, BOOT_MS);
            sourceQmp.close();
          },
        );

        // Again, with the boot disk kept and a disk hot-plugged: the migration goes through.
        await withVmm(
          portedMachine(disk, ["-qmp", `unix:${sourceSocket},server,nowait`]),
          async (source) => {
            await source.waitFor(/probe> /, BOOT_MS);
            await byInterrupt(source, "blk 0 write 7 31", /OK blk write/);
            const sourceQmp = await qmpOf(source, sourceSocket);
            const slotState = await plugIntoSecondPort(source, sourceQmp, plugged);
            await withVmm(
              portedMachine(disk, [
                ...hotPlugged(plugged),
                "-qmp",
                `unix:${destSocket},server,nowait`,
                "-incoming",
                uri,
              ]),
              async (dest) => {
                const destQmp = await qmpOf(dest, destSocket);
                try {
                  assert.deepEqual(await sourceQmp.execute("migrate", { uri }), {});
                  const info = await migrationEnded(sourceQmp);
                  assert.equal(info.status, "completed", JSON.stringify(info));
                  assert.deepEqual(await source.waitForExit(BOOT_MS), { code: 0, signal: null });
                  await destQmp.waitForEvent("RESUME", BOOT_MS);
                  console.log(
                    `q35 migration with root ports: total ${info["total-time"]} ms, downtime ${info.downtime} ms`,
                  );
                  await checkPorted(dest, destQmp, slotState, 7, 31);
                  assert.equal(await status(destQmp), "running");
                } finally {
                  sourceQmp.close();
                  destQmp.close();
                }
              },
            );
          },
        );
        assert.deepEqual(readSector(disk, 8), sectorPattern(8, 32));
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "a NIC hot-plugged into a root port is restored in its slot with the MAC its guest had, though the clone's own would derive another",
    TEST,
    async () => {
      requireTaps();
      const tmp = tempDir();
      const taps = [makeTap("vq35a"), makeTap("vq35b")];
      try {
        const disk = makeDisk(tmp.dir);
        const template = path.join(tmp.dir, "template");
        const first = path.join(tmp.dir, "first.sock");
        const nicOf = async (qmp: QmpClient): Promise<Record<string, unknown> | undefined> => {
          const listed = (await qmp.execute("virga-query-devices")) as {
            pci: Record<string, unknown>[];
          };
          return listed.pci.find((f) => f.id === "nic1");
        };
        let saved: Record<string, unknown> | undefined;
        await withVmm(portedMachine(disk, ["-qmp", `unix:${first},server,nowait`]), async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          const qmp = await qmpOf(vm, first);
          await qmp.execute("netdev_add", { id: "net-1", ifname: taps[0]?.name });
          await qmp.execute("device_add", {
            driver: "virtio-net-pci",
            id: "nic1",
            netdev: "net-1",
            bus: "pcie.2",
            addr: "0x0",
          });
          await slot(vm, "00:05.0", "on");
          saved = await nicOf(qmp);
          assert.deepEqual(await qmp.execute("migrate", { uri: `file:${template}` }), {});
          qmp.close();
        });
        assert.equal(saved?.bus, "pcie.2");

        // Another QMP socket: a MAC derived here would differ from the source's.
        const socket = path.join(tmp.dir, "restored.sock");
        await withVmm(
          portedMachine(disk, [
            "-netdev",
            `tap,id=n1,ifname=${taps[1]?.name}`,
            "-device",
            "virtio-net-pci,netdev=n1,id=nic1,bus=pcie.2,addr=0x0",
            "-qmp",
            `unix:${socket},server,nowait`,
            "-incoming",
            `file:${template}`,
          ]),
          async (vm) => {
            const qmp = await qmpOf(vm, socket);
            assert.equal(await status(qmp), "running");
            const restored = await nicOf(qmp);
            assert.deepEqual(
              [restored?.bus, restored?.addr, restored?.mac],
              ["pcie.2", "0x0.0", saved?.mac],
            );
            assert.deepEqual(await scan(vm), [
              ...PORTED_SCAN.slice(0, 4),
              "02:00.0 1af4:1041 020000",
            ]);
            qmp.close();
          },
        );
      } finally {
        for (const tap of taps) tap.remove();
        tmp.cleanup();
      }
    },
  );
});
