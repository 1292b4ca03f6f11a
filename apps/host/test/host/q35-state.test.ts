// Snapshots and live migration of a q35 VM (docs/q35.md, "Snapshots and
// live migration") on this machine's KVM, with the probe guest driving a
// virtio-blk-pci disk by MSI-X: after a restore or a migration the disk
// still answers by its MSI-X vector (so its configuration space, MSI-X
// table and KVM routes came back), its BARs are where they were, and the
// guest's counter carries on; a command line that describes another
// machine is refused by name.
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
