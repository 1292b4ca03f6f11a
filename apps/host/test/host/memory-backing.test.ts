// Guest RAM backings (docs/architecture.md, "Guest memory") on a real
// virga-vmm with the probe guest: RAM in a memfd (-mem-share) another
// process reads and writes, in a file on tmpfs (-mem-path), and a restored
// snapshot's copy-on-write mapping. On each, pages the balloon gave back
// read as zeros, and a system_reset boots over freshly zeroed memory (the
// probe guest reports a page its loader should have zeroed that was not).
// Snapshots of shared or file-backed RAM are refused by name, and so is
// each -mem-path that cannot hold guest RAM.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import type { QmpClient } from "../../src/qmp/client";
import { tempDir } from "../support/disk";
import {
  connectQmp,
  probeArgs,
  requireKvmHost,
  waitForPath,
  withVmm,
  type VmmProcess,
} from "../support/guest";

const BOOT_MS = 30000;
const TEST = { timeout: 120000 };
const MIB = 1024 * 1024;
const MEMORY = 128 * MIB;
/** Where virga-vmm keeps the VM generation ID (docs/snapshots.md). */
const VMGENID_GPA = 0x9f000;

async function shell(vm: VmmProcess, command: string, answer: RegExp): Promise<RegExpExecArray> {
  vm.send(command);
  const line = (await vm.waitFor(/(?:OK|ERR) [^\r\n]*(?=\r?\n)/, BOOT_MS))[0];
  const match = answer.exec(line);
  assert.ok(match !== null, `'${command}' answered '${line}', expected ${String(answer)}`);
  return match;
}

/** A VM with a balloon and a QMP socket, booted to its prompt. */
async function withGuest(
  dir: string,
  extra: string[],
  body: (vm: VmmProcess, qmp: QmpClient) => Promise<void>,
): Promise<void> {
  const socket = path.join(dir, `qmp-${Date.now()}.sock`);
  const args = [
    ...probeArgs(),
    "-device",
    "virtio-balloon-device",
    "-qmp",
    `unix:${socket},server,nowait`,
    ...extra,
  ];
  await withVmm(args, async (vm) => {
    await waitForPath(socket, vm);
    const qmp = await connectQmp(socket, vm);
    try {
      await body(vm, qmp);
    } finally {
      qmp.close();
    }
  });
}

/** Sets the balloon so the guest keeps `bytes`, and waits until it has. */
async function balloonTo(vm: VmmProcess, qmp: QmpClient, bytes: number): Promise<void> {
  await qmp.execute("balloon", { value: bytes });
  const pages = (MEMORY - bytes) / 4096;
  await shell(vm, "balloon info", new RegExp(`OK balloon target=${pages} actual=${pages}$`));
}

/**
 * What every backing must do: the pages the balloon took read as zeros
 * when the guest has them back, and a system_reset boots clean.
 */
async function givesZerosAndResetsClean(vm: VmmProcess, qmp: QmpClient): Promise<void> {
  await vm.waitFor(/probe> /, BOOT_MS);
  // The balloon takes the pool's first pages: the ones `mem fill` wrote.
  await shell(vm, "mem fill 4 7", /OK mem fill/);
  assert.doesNotMatch((await shell(vm, "mem sum 4", /OK mem sum (\w+)/))[0], /OK mem sum 0$/);
  await balloonTo(vm, qmp, MEMORY - 4 * MIB);
  await balloonTo(vm, qmp, MEMORY);
  await shell(vm, "mem sum 4", /OK mem sum 0$/);

  assert.deepEqual(await qmp.execute("system_reset"), {});
  await vm.waitFor(/PROBE ready/, BOOT_MS);
  await vm.waitFor(/probe> /, BOOT_MS);
  assert.doesNotMatch(vm.serial.text, /PROBE stale memory/);
  await shell(vm, "mem sum 1", /OK mem sum/);
}

/** The fd of `pid` whose link matches, as a path another process can open. */
function fdLink(pid: number, link: RegExp): string {
  const dir = `/proc/${pid}/fd`;
  for (const fd of readdirSync(dir)) {
    try {
      if (link.test(readlinkSync(path.join(dir, fd)))) return path.join(dir, fd);
    } catch {
      // closed meanwhile
    }
  }
  throw new Error(`virga-vmm (pid ${pid}) has no fd linked to ${String(link)}`);
}

/** Reads the generation ID from guest RAM's file, writes another, and the guest sees it. */
async function sharesRamWith(vm: VmmProcess, ramFile: string): Promise<void> {
  await vm.waitFor(/probe> /, BOOT_MS);
  const fromGuest = (await shell(vm, "vmgenid", /OK vmgenid ([0-9a-f]{32})/))[1];
  const fd = openSync(ramFile, "r+");
  try {
    const bytes = Buffer.alloc(16);
    assert.equal(readSync(fd, bytes, 0, 16, VMGENID_GPA), 16);
    assert.equal(bytes.toString("hex"), fromGuest, "another process reads guest RAM");
    const mine = Buffer.from("00112233445566778899aabbccddeeff", "hex");
    writeSync(fd, mine, 0, 16, VMGENID_GPA);
  } finally {
    closeSync(fd);
  }
  await shell(vm, "vmgenid", /OK vmgenid 00112233445566778899aabbccddeeff$/);
}

function runStatus(qmp: QmpClient): Promise<string> {
  return qmp.execute("query-status").then((status) => (status as { status: string }).status);
}

/** A snapshot of this VM is refused with `why`, nothing is written, and the guest runs on. */
async function refusesSnapshot(
  vm: VmmProcess,
  qmp: QmpClient,
  dir: string,
  why: RegExp,
): Promise<void> {
  await vm.waitFor(/probe> /, BOOT_MS);
  const before = readdirSync(dir).sort();
  const reply = await qmp.request("migrate", { uri: `file:${path.join(dir, "template")}` });
  assert.match(reply.error?.desc ?? JSON.stringify(reply), why);
  assert.deepEqual(readdirSync(dir).sort(), before, "nothing is left behind");
  assert.equal(await runStatus(qmp), "running");
  assert.equal(
    ((await qmp.execute("query-migrate")) as { status: string }).status,
    "none",
    "no snapshot was started",
  );
  await shell(vm, "mem sum 1", /OK mem sum/);
}

describe("guest RAM backings", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "-mem-share: guest RAM is a memfd another process reads and writes; the balloon gives zeros and frees it; system_reset boots clean",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        await withGuest(tmp.dir, ["-mem-share"], async (vm, qmp) => {
          const memfd = fdLink(vm.child.pid ?? 0, /^\/memfd:virga-guest-ram/);
          await sharesRamWith(vm, memfd);
          await shell(vm, "mem touch 16", /OK mem touch/);
          const touched = statSync(memfd).blocks;
          await balloonTo(vm, qmp, MEMORY - 16 * MIB);
          const inflated = statSync(memfd).blocks;
          assert.ok(
            (touched - inflated) * 512 >= 15 * MIB,
            `the memfd held ${(touched * 512) >> 20} MiB, then ${(inflated * 512) >> 20} MiB`,
          );
          await balloonTo(vm, qmp, MEMORY);
          await givesZerosAndResetsClean(vm, qmp);
          await refusesSnapshot(
            vm,
            qmp,
            tmp.dir,
            /^snapshot: guest RAM is shared \(-mem-share\); only anonymous guest RAM can be saved$/,
          );
        });
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "-mem-path on a tmpfs directory: an unlinked file holds guest RAM; zeros from the balloon, system_reset boots clean, no snapshot",
    TEST,
    async () => {
      const tmp = tempDir();
      const ramDir = mkdtempSync("/dev/shm/virga-mem-path-");
      try {
        await withGuest(tmp.dir, ["-mem-path", ramDir], async (vm, qmp) => {
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          assert.deepEqual(readdirSync(ramDir), [], "the VMM's file is unlinked");
          const ram = fdLink(
            vm.child.pid ?? 0,
            new RegExp(`^${ramDir}/virga-ram-\\w{6} \\(deleted\\)$`),
          );
          assert.equal(statSync(ram).size, MEMORY);
          await givesZerosAndResetsClean(vm, qmp);
          await refusesSnapshot(
            vm,
            qmp,
            tmp.dir,
            new RegExp(
              `^snapshot: guest RAM is file-backed \\(-mem-path ${ramDir}\\); only anonymous guest RAM can be saved$`,
            ),
          );
        });
      } finally {
        rmSync(ramDir, { recursive: true, force: true });
        tmp.cleanup();
      }
    },
  );

  it(
    "-mem-path file with -mem-share: the named file is guest RAM another process shares; system_reset boots clean",
    TEST,
    async () => {
      const tmp = tempDir();
      const ramDir = mkdtempSync("/dev/shm/virga-mem-path-");
      const ramFile = path.join(ramDir, "ram");
      writeFileSync(ramFile, "");
      try {
        await withGuest(tmp.dir, ["-mem-share", "-mem-path", ramFile], async (vm, qmp) => {
          await sharesRamWith(vm, ramFile);
          await givesZerosAndResetsClean(vm, qmp);
          await refusesSnapshot(
            vm,
            qmp,
            tmp.dir,
            /^snapshot: guest RAM is file-backed and shared \(-mem-path .*\/ram, -mem-share\); only anonymous guest RAM can be saved$/,
          );
        });
        assert.equal(
          readFileSync(ramFile).length,
          MEMORY,
          "the user's file stays, as big as guest RAM",
        );
      } finally {
        rmSync(ramDir, { recursive: true, force: true });
        tmp.cleanup();
      }
    },
  );

  it(
    "live migration copies shared RAM: a -mem-share guest moves to a -mem-path destination with every page",
    TEST,
    async () => {
      const tmp = tempDir();
      const ramDir = mkdtempSync("/dev/shm/virga-mem-path-");
      try {
        const uri = `unix:${path.join(tmp.dir, "migrate.sock")}`;
        const destSocket = path.join(tmp.dir, "dest.sock");
        await withGuest(tmp.dir, ["-mem-share"], async (source, sourceQmp) => {
          await source.waitFor(/probe> /, BOOT_MS);
          await shell(source, "mem fill 16 3", /OK mem fill/);
          const sum = (await shell(source, "mem sum 16", /OK mem sum (\w+)/))[1] ?? "";
          const dest = [
            ...probeArgs(),
            "-device",
            "virtio-balloon-device",
            "-mem-path",
            ramDir,
            "-qmp",
            `unix:${destSocket},server,nowait`,
            "-incoming",
            uri,
          ];
          await withVmm(dest, async (vm) => {
            await waitForPath(destSocket, vm);
            const destQmp = await connectQmp(destSocket, vm);
            try {
              await sourceQmp.execute("migrate", { uri });
              for (let i = 0; i < 3000; i++) {
                const info = (await sourceQmp.execute("query-migrate")) as { status: string };
                if (info.status === "completed") break;
                assert.notEqual(info.status, "failed", JSON.stringify(info));
                await new Promise((r) => setTimeout(r, 20));
              }
              await destQmp.waitForEvent("RESUME", BOOT_MS);
              await shell(vm, "mem sum 16", new RegExp(`OK mem sum ${sum}$`));
              assert.deepEqual(await destQmp.execute("system_reset"), {});
              await vm.waitFor(/PROBE ready/, BOOT_MS);
              assert.doesNotMatch(vm.serial.text, /PROBE stale memory/);
            } finally {
              destQmp.close();
            }
          });
        });
      } finally {
        rmSync(ramDir, { recursive: true, force: true });
        tmp.cleanup();
      }
    },
  );

  it(
    "a restored snapshot's copy-on-write RAM: zeros from the balloon, and system_reset boots clean, not on the snapshot's bytes",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const template = path.join(tmp.dir, "template");
        await withGuest(tmp.dir, [], async (vm, qmp) => {
          await vm.waitFor(/probe> /, BOOT_MS);
          await shell(vm, "mem fill 4 7", /OK mem fill/);
          await qmp.execute("migrate", { uri: `file:${template}` });
        });
        await withGuest(tmp.dir, ["-incoming", `file:${template}`], async (vm, qmp) => {
          // The snapshot's pages hold the fill; each must come back as zeros.
          await shell(vm, "mem sum 4", /OK mem sum [1-9a-f]\w*$/);
          await balloonTo(vm, qmp, MEMORY - 4 * MIB);
          await balloonTo(vm, qmp, MEMORY);
          await shell(vm, "mem sum 4", /OK mem sum 0$/);
          assert.deepEqual(await qmp.execute("system_reset"), {});
          await vm.waitFor(/PROBE ready/, BOOT_MS);
          assert.doesNotMatch(vm.serial.text, /PROBE stale memory/);
          await vm.waitFor(/probe> /, BOOT_MS);
          await shell(vm, "mem sum 1", /OK mem sum/);
        });
      } finally {
        tmp.cleanup();
      }
    },
  );

  it(
    "refuses, naming the flag, a -mem-path that cannot hold guest RAM and a restore into shared RAM",
    TEST,
    async () => {
      const tmp = tempDir();
      const mounts: string[] = [];
      const mount = (type: string, options: string): string => {
        const dir = path.join(tmp.dir, `${type}-${mounts.length}`);
        mkdirSync(dir);
        execFileSync("mount", ["-t", type, "-o", options, `virga-${type}`, dir]);
        mounts.push(dir);
        return dir;
      };
      const refusal = async (extra: string[], memory = "128"): Promise<string> =>
        withVmm([...probeArgs({ memory }), ...extra], async (vm) => {
          const exit = await vm.waitForExit();
          assert.equal(exit.code, 2, vm.stderr);
          return vm.stderr.trim();
        });
      try {
        const readOnly = mount("tmpfs", "ro,size=1m");
        assert.match(
          await refusal(["-mem-path", readOnly]),
          /^virga-vmm: -mem-path: .*tmpfs-0 is not writable \(Read-only file system\); expected <absolute path of a directory \(a hugetlbfs mount, say\) or file>, got '.*tmpfs-0'$/,
        );
        assert.match(
          await refusal(["-mem-path", path.join(tmp.dir, "none", "ram")]),
          /^virga-vmm: -mem-path: .*none\/ram does not exist, nor does its directory .*none;/,
        );
        assert.match(await refusal(["-mem-path"]), /^virga-vmm: -mem-path: missing value;/);
        assert.match(
          await refusal(["-mem-path", "/dev/null"]),
          /^virga-vmm: -mem-path: \/dev\/null is neither a directory nor a regular file;/,
        );
        const small = path.join(tmp.dir, "small");
        writeFileSync(small, Buffer.alloc(MIB));
        assert.match(
          await refusal(["-mem-path", small]),
          /^virga-vmm: -mem-path: .*small holds 1 MiB, less than the guest's 128 MiB of RAM \(-m\);/,
        );

        // hugetlbfs: the page size comes from the mount; asking for one huge
        // page more than the host has free is refused whatever it has.
        const huge = mount("hugetlbfs", "pagesize=2M");
        assert.match(
          await refusal(["-mem-path", huge], "17"),
          /^virga-vmm: -mem-path: guest RAM \(17 MiB, -m\) is not a whole number of the 2048 KiB huge pages of .*hugetlbfs-1;/,
        );
        const free = Number(
          readFileSync("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "utf8"),
        );
        const memory = Math.max(16, (free + 1) * 2);
        assert.match(
          await refusal(["-mem-path", huge], String(memory)),
          new RegExp(
            `^virga-vmm: -mem-path: .*hugetlbfs-1 is hugetlbfs with 2048 KiB pages: the guest's ${memory} MiB of RAM need ${memory / 2}, the host has \\d+ free \\(vm.nr_hugepages\\);`,
          ),
        );

        for (const flags of [["-mem-share"], ["-mem-path", tmp.dir]]) {
          assert.match(
            await refusal([...flags, "-incoming", `file:${tmp.dir}/template`]),
            new RegExp(
              `^virga-vmm: -incoming: a snapshot restores into anonymous guest RAM \\(its memory file mapped copy-on-write\\), not the shared or file-backed RAM ${flags[0]} asks for;`,
            ),
          );
        }
      } finally {
        for (const dir of mounts) execFileSync("umount", [dir]);
        tmp.cleanup();
      }
    },
  );
});
