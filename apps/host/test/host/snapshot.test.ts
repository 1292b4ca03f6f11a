// Snapshots and restore (docs/snapshots.md) on a real virga-vmm with the
// probe guest: a restored guest carries on where it was (its counter, its
// memory, its disk and console), ten clones run from one template at once,
// a pause is quiescent, and every refusal is named with nothing left behind.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import type { QmpClient } from "../../src/qmp/client";
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
import { ETHERTYPE, receiveOnTap, sendOnTap, tapIo } from "../support/tap-frames";

const BOOT_MS = 30000;
const TEST = { timeout: 120000 };

/** Types a shell command; its answer (the next OK/ERR line) must match `answer`. */
async function shell(vm: VmmProcess, command: string, answer: RegExp): Promise<RegExpExecArray> {
  vm.send(command);
  const line = (await vm.waitFor(/(?:OK|ERR) [^\r\n]*(?=\r?\n)/, BOOT_MS))[0];
  const match = answer.exec(line);
  assert.ok(match !== null, `'${command}' answered '${line}', expected ${String(answer)}`);
  return match;
}

async function withQmp<T>(
  vm: VmmProcess,
  socket: string,
  body: (qmp: QmpClient) => Promise<T>,
): Promise<T> {
  await waitForPath(socket, vm);
  const qmp = await connectQmp(socket, vm);
  try {
    return await body(qmp);
  } finally {
    qmp.close();
  }
}

describe("snapshots and restore", () => {
  before(() => {
    requireKvmHost();
  });

  it("a restored guest carries on: its counter, memory, disk and console", TEST, async () => {
    const tmp = tempDir();
    try {
      const disk = makeDisk(tmp.dir, "disk.img");
      const machine = [
        ...probeArgs({ smp: "2" }),
        "-drive",
        `file=${disk},id=d0`,
        "-device",
        "virtio-blk-device,drive=d0",
      ];
      const template = path.join(tmp.dir, "template");
      const first = path.join(tmp.dir, "first.sock");
      let sum = "";
      let lastCount = 0;
      await withVmm([...machine, "-qmp", `unix:${first},server,nowait`], async (vm) => {
        await vm.waitFor(/probe> /, BOOT_MS);
        await shell(vm, "mem fill 16 77", /OK mem fill/);
        sum = (await shell(vm, "mem sum 16", /OK mem sum (\w+)/))[1] ?? "";
        await shell(vm, "blk 0 write 4 21", /OK blk write/);
        vm.send("count");
        await vm.waitFor(/count 5\r?\n/, BOOT_MS);
        await withQmp(vm, first, async (qmp) => {
          assert.deepEqual(await qmp.execute("migrate", { uri: `file:${template}` }), {});
          const info = (await qmp.execute("query-migrate")) as { status: string };
          assert.equal(info.status, "completed");
          assert.equal(
            ((await qmp.execute("query-status")) as { status: string }).status,
            "paused",
          );
        });
        lastCount = Math.max(...vm.serial.lines(/^count \d+/).map((l) => Number(l.slice(6))));
      });
      assert.deepEqual(readdirSync(template).sort(), ["memory", "state"]);

      // The seed's restore: the same command line, another QMP socket, -incoming.
      const second = path.join(tmp.dir, "second.sock");
      await withVmm(
        [...machine, "-qmp", `unix:${second},server,nowait`, "-incoming", `file:${template}`],
        async (vm) => {
          const next = await vm.waitFor(/count (\d+)\r?\n/, BOOT_MS);
          assert.equal(Number(next[1]), lastCount + 1, "the counter continues from the snapshot");
          vm.send("x"); // any key stops count
          await vm.waitFor(/OK count/, BOOT_MS);
          await shell(vm, "mem sum 16", new RegExp(`OK mem sum ${sum}$`));
          await shell(vm, "blk 0 verify 4 21", /OK blk verify/);
          await shell(vm, "blk 0 write 6 22", /OK blk write/);
          await shell(vm, "blk 0 flush", /OK blk flush/);
          await withQmp(vm, second, async (qmp) => {
            assert.equal(
              ((await qmp.execute("query-status")) as { status: string }).status,
              "running",
            );
          });
        },
      );
      assert.deepEqual(readSector(disk, 6), sectorPattern(6, 22));
    } finally {
      tmp.cleanup();
    }
  });

  it(
    "ten clones from one template run at once, each on its own console and QMP, each with its own generation ID",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const template = path.join(tmp.dir, "template");
        const socket = path.join(tmp.dir, "source.sock");
        let templateId = "";
        await withVmm([...probeArgs(), "-qmp", `unix:${socket},server,nowait`], async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          await shell(vm, "mem fill 8 9", /OK mem fill/);
          templateId = (await shell(vm, "vmgenid", /OK vmgenid ([0-9a-f]{32})/))[1] ?? "";
          await withQmp(vm, socket, async (qmp) => {
            await qmp.execute("migrate", { uri: `file:${template}` });
          });
        });
        const clones = Array.from({ length: 10 }, (_, i) =>
          withVmm(
            [
              ...probeArgs(),
              "-name",
              `clone-${i}`,
              "-qmp",
              `unix:${path.join(tmp.dir, `clone-${i}.sock`)},server,nowait`,
              "-incoming",
              `file:${template}`,
            ],
            async (vm) => {
              // The snapshot was taken at the prompt: the restored shell answers at once.
              await shell(vm, "mem sum 8", /OK mem sum \w+/);
              await withQmp(vm, path.join(tmp.dir, `clone-${i}.sock`), async (qmp) => {
                assert.equal(
                  ((await qmp.execute("query-status")) as { status: string }).status,
                  "running",
                );
              });
              const sum = (await shell(vm, "mem sum 8", /OK mem sum (\w+)/))[1];
              const id = (await shell(vm, "vmgenid", /OK vmgenid ([0-9a-f]{32})/))[1];
              return { sum, id };
            },
          ),
        );
        const results = await Promise.all(clones);
        assert.equal(
          new Set(results.map((r) => r.sum)).size,
          1,
          "every clone has the template's memory",
        );
        const ids = new Set([templateId, ...results.map((r) => r.id)]);
        assert.equal(ids.size, 11, "the template and every clone have their own generation ID");
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "clones given their own MACs: each one's frames leave with its MAC, frames to it arrive, its guest keeps the template's",
    TEST,
    async () => {
      requireTaps();
      const taps = [makeTap(), makeTap(), makeTap()];
      const tmp = tempDir();
      const templateMac = "52:56:0a:0b:0c:00";
      const nic = (tap: string, mac: string): string[] => [
        "-netdev",
        `tap,id=n0,ifname=${tap}`,
        "-device",
        `virtio-net-device,netdev=n0,mac=${mac}`,
      ];
      try {
        const template = path.join(tmp.dir, "template");
        const socket = path.join(tmp.dir, "source.sock");
        await withVmm(
          [
            ...probeArgs(),
            ...nic(taps[0]?.name ?? "", templateMac),
            "-qmp",
            `unix:${socket},server,nowait`,
          ],
          async (vm) => {
            await vm.waitFor(/probe> /, BOOT_MS);
            await withQmp(vm, socket, async (qmp) => {
              await qmp.execute("migrate", { uri: `file:${template}` });
            });
          },
        );
        const wireMacs = ["52:56:0a:0b:0c:01", "52:56:0a:0b:0c:02"];
        const eth1Macs = new Set<string>();
        // Both clones run at once, each on its own tap.
        await Promise.all(
          wireMacs.map((wire, i) => {
            const tap = taps[i + 1]?.name ?? "";
            const qmpSocket = path.join(tmp.dir, `clone-${i}.sock`);
            return withVmm(
              [
                ...probeArgs(),
                ...nic(tap, wire),
                "-qmp",
                `unix:${qmpSocket},server,nowait`,
                "-incoming",
                `file:${template}`,
              ],
              async (vm) => {
                // The guest read its MAC when it booted as the template and keeps it.
                await shell(vm, "net 0 info", new RegExp(`OK net info mac=${templateMac} link=up`));
                const received = await receiveOnTap(tap);
                await shell(vm, `net 0 send broadcast ${ETHERTYPE} 100 ${10 + i}`, /OK net send/);
                assert.deepEqual(await received(), {
                  len: 100,
                  dst: "ff:ff:ff:ff:ff:ff",
                  src: wire,
                  type: ETHERTYPE,
                  seed: 10 + i,
                });
                vm.send(`net 0 recv 10000 ${ETHERTYPE}`);
                await sendOnTap(tap, wire, 600, 20 + i);
                const got = await vm.waitFor(
                  /OK net recv len=(\d+) dst=(\S+) src=\S+ type=(\S+) seed=(\S+)/,
                );
                assert.deepEqual(got.slice(1, 5), ["600", templateMac, ETHERTYPE, String(20 + i)]);
                await withQmp(vm, qmpSocket, async (qmp) => {
                  const devices = (await qmp.execute("virga-query-devices")) as {
                    net: { mac: string; "guest-mac"?: string }[];
                  };
                  const [eth0, eth1] = devices.net;
                  assert.ok(eth0 !== undefined && eth1 !== undefined);
                  assert.equal(eth0.mac, wire);
                  assert.equal(eth0["guest-mac"], templateMac);
                  // The empty slot has this clone's own derived MAC for a NIC hot-plugged later.
                  assert.ok(eth1["guest-mac"] !== undefined && eth1.mac !== eth1["guest-mac"]);
                  eth1Macs.add(eth1.mac);
                });
              },
            );
          }),
        );
        assert.equal(eth1Macs.size, 2, "each clone's empty slot has a MAC of its own");
      } finally {
        for (const tap of taps) tap.remove();
        tmp.cleanup();
      }
    },
  );

  it(
    "a pause is quiescent: two snapshots of one pause are identical while frames arrive",
    TEST,
    async () => {
      requireTaps();
      const tap = makeTap();
      const tmp = tempDir();
      try {
        const socket = path.join(tmp.dir, "qmp.sock");
        const args = [
          ...probeArgs(),
          "-netdev",
          `tap,id=n0,ifname=${tap.name}`,
          "-device",
          "virtio-net-device,netdev=n0",
          "-qmp",
          `unix:${socket},server,nowait`,
        ];
        await withVmm(args, async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          // Network load: the host keeps sending frames to the guest's NIC.
          const flood = spawn("bash", [
            "-c",
            `for i in $(seq 400); do /usr/bin/python3 ${tapIo} ${tap.name} send ff:ff:ff:ff:ff:ff 0x88b5 600 $i; done`,
          ]);
          try {
            await withQmp(vm, socket, async (qmp) => {
              await new Promise((r) => setTimeout(r, 300));
              await qmp.execute("stop");
              for (const name of ["a", "b"]) {
                await qmp.execute("migrate", { uri: `file:${path.join(tmp.dir, name)}` });
                await new Promise((r) => setTimeout(r, 300));
              }
            });
          } finally {
            flood.kill();
          }
        });
        for (const file of ["state", "memory"]) {
          const a = readFileSync(path.join(tmp.dir, "a", file));
          const b = readFileSync(path.join(tmp.dir, "b", file));
          assert.ok(a.equals(b), `${file} changed while the VM was paused`);
        }
      } finally {
        tap.remove();
        tmp.cleanup();
      }
    },
  );

  it("refuses, by name, a snapshot it cannot write and leaves nothing behind", TEST, async () => {
    const tmp = tempDir();
    try {
      const socket = path.join(tmp.dir, "qmp.sock");
      const readOnly = path.join(tmp.dir, "ro");
      mkdirSync(readOnly);
      execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "virga-ro", readOnly]);
      const full = path.join(tmp.dir, "full");
      mkdirSync(full);
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "virga-full", full]);
      const occupied = path.join(tmp.dir, "occupied");
      mkdirSync(occupied);
      writeFileSync(path.join(occupied, "x"), "x");
      try {
        await withVmm([...probeArgs(), "-qmp", `unix:${socket},server,nowait`], async (vm) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          await shell(vm, "mem touch 4", /OK mem touch/);
          await withQmp(vm, socket, async (qmp) => {
            const cases: [string, RegExp][] = [
              [
                `file:${path.join(readOnly, "t")}`,
                /^creating .*\/ro\/\.t\.tmp-\d+-\d+: Read-only file system$/,
              ],
              [`file:${path.join(full, "t")}`, /No space left on device$/],
              [
                `file:${path.join(tmp.dir, "missing", "t")}`,
                /^the parent directory .*missing does not exist$/,
              ],
              [`file:${occupied}`, /already exists and is not empty$/],
              [
                "file:relative/t",
                /^uri: the snapshot directory 'relative\/t' must be an absolute path$/,
              ],
              [
                "exec:cat > /tmp/x",
                /^uri: 'exec:cat > \/tmp\/x' is not a migration URI; expected file:<dir>, tcp:<host>:<port> or unix:<path>$/,
              ],
            ];
            for (const [uri, desc] of cases) {
              const reply = await qmp.request("migrate", { uri });
              assert.match(reply.error?.desc ?? JSON.stringify(reply), desc, uri);
            }
            const info = (await qmp.execute("query-migrate")) as {
              status: string;
              "error-desc"?: string;
            };
            assert.equal(info.status, "failed");
            assert.match(info["error-desc"] ?? "", /already exists and is not empty/);
            await qmp.execute("cont");
            assert.equal(
              ((await qmp.execute("query-status")) as { status: string }).status,
              "running",
            );
          });
          await shell(vm, "mem sum 1", /OK mem sum/);
        });
        assert.deepEqual(readdirSync(readOnly), []);
        assert.deepEqual(readdirSync(full), [], "the half-written snapshot was removed");
        assert.deepEqual(readdirSync(occupied), ["x"]);
      } finally {
        execFileSync("umount", [readOnly]);
        execFileSync("umount", [full]);
      }
    } finally {
      tmp.cleanup();
    }
  });

  it(
    "refuses a restore onto another machine, or from a corrupt, truncated or foreign snapshot, by name",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const template = path.join(tmp.dir, "template");
        const socket = path.join(tmp.dir, "qmp.sock");
        await withVmm(
          [...probeArgs({ smp: "2" }), "-qmp", `unix:${socket},server,nowait`],
          async (vm) => {
            await vm.waitFor(/probe> /, BOOT_MS);
            await withQmp(vm, socket, async (qmp) => {
              await qmp.execute("migrate", { uri: `file:${template}` });
            });
          },
        );
        const restore = async (args: string[], dir = template): Promise<string> =>
          withVmm([...args, "-incoming", `file:${dir}`], async (vm) => {
            const exit = await vm.waitForExit();
            assert.equal(exit.code, 1, vm.stderr);
            return vm.stderr.trim();
          });
        assert.match(
          await restore([...probeArgs({ smp: "1", memory: "256" })]),
          /^virga-vmm: error: the command line does not describe the machine saved in .*template: -smp: the snapshot has 2 vCPUs .*, the command line 1 vCPUs .*; -m: the snapshot has 128 MiB, the command line 256 MiB$/,
        );
        const disk = makeDisk(tmp.dir, "d.img");
        assert.match(
          await restore([
            ...probeArgs({ smp: "2" }),
            "-drive",
            `file=${disk},id=d`,
            "-device",
            "virtio-blk-device,drive=d,addr=3",
          ]),
          /block slot 3 \(vdd\): the snapshot has no disk, the command line a 1 MiB disk/,
        );

        const copy = (name: string, edit: (state: Buffer) => Buffer): string => {
          const dir = path.join(tmp.dir, name);
          mkdirSync(dir);
          execFileSync("cp", [
            "--sparse=always",
            path.join(template, "memory"),
            path.join(dir, "memory"),
          ]);
          writeFileSync(path.join(dir, "state"), edit(readFileSync(path.join(template, "state"))));
          return dir;
        };
        const flipped = copy("flipped", (s) => {
          const b = Buffer.from(s);
          const middle = b.length >> 1;
          b.writeUInt8((b.readUInt8(middle) ^ 0x10) & 0xff, middle);
          return b;
        });
        assert.match(
          await restore(probeArgs({ smp: "2" }), flipped),
          /flipped\/state is corrupt or truncated \(checksum mismatch\)$/,
        );
        const truncated = copy("truncated", (s) => s.subarray(0, s.length - 100));
        assert.match(
          await restore(probeArgs({ smp: "2" }), truncated),
          /truncated\/state is corrupt or truncated/,
        );
        const foreign = copy("foreign", () => Buffer.from("QEVM\0\0\0\x03 a QEMU savevm stream"));
        assert.match(
          await restore(probeArgs({ smp: "2" }), foreign),
          /foreign\/state is not a Virga state file/,
        );
        assert.match(
          await restore(probeArgs({ smp: "2" }), path.join(tmp.dir, "nothing")),
          /cannot open .*nothing\/state: No such file or directory$/,
        );
        assert.ok(existsSync(path.join(template, "state")), "the template itself is untouched");
      } finally {
        tmp.cleanup();
      }
    },
  );
});
