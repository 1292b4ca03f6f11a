// -daemonize: the parent returns once the VM is up, the detached child keeps
// running, writes the pidfile, logs with -D, and cleans up on QMP quit.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { QmpClient } from "../../src/qmp/client";
import { tempDir } from "../support/disk";
import { probeArgs, requireKvmHost } from "../support/guest";
import { repoRoot, vmmBin } from "../support/paths";

const TEST = { timeout: 90000 };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("-daemonize", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "detaches, writes the child's pid, serves QMP, logs, and cleans up on quit",
    TEST,
    async () => {
      const tmp = tempDir();
      let pid = 0;
      try {
        const socketPath = path.join(tmp.dir, "qmp.sock");
        const pidfile = path.join(tmp.dir, "vm.pid");
        const log = path.join(tmp.dir, "vmm.log");
        const serial = path.join(tmp.dir, "serial.log");
        const started = Date.now();
        const parent = spawnSync(
          vmmBin,
          [
            ...probeArgs(),
            "-name",
            "daemon-test",
            "-serial",
            `file,path=${serial}`,
            "-qmp",
            `unix:${socketPath},server,nowait`,
            "-daemonize",
            "-pidfile",
            pidfile,
            "-D",
            log,
          ],
          { cwd: repoRoot, encoding: "utf8", timeout: 30000 },
        );
        assert.equal(parent.status, 0, parent.stderr);
        assert.ok(Date.now() - started < 20000);
        pid = Number(readFileSync(pidfile, "utf8").trim());
        assert.ok(pid > 0 && pid !== parent.pid && alive(pid), `pid ${pid}`);
        assert.ok(existsSync(socketPath), "QMP socket exists when the parent returns");

        await waitUntil(
          () => existsSync(serial) && readFileSync(serial, "utf8").includes("PROBE ready"),
          30000,
          "PROBE ready",
        );
        const qmp = await QmpClient.connect(socketPath);
        assert.equal(((await qmp.execute("query-status")) as { status: string }).status, "running");
        await qmp.execute("quit");
        await qmp.closed();
        await waitUntil(() => !alive(pid), 10000, "the daemon to exit");
        assert.equal(existsSync(pidfile), false, "pidfile removed");
        assert.equal(existsSync(socketPath), false, "socket removed");
        assert.match(readFileSync(log, "utf8"), /virga-vmm\[\d+\]: .*host-qmp-quit/);
      } finally {
        if (pid > 0 && alive(pid)) process.kill(pid, "SIGKILL");
        tmp.cleanup();
      }
    },
  );

  it("reports a VM that fails to start and exits 1", TEST, () => {
    const tmp = tempDir();
    try {
      const log = path.join(tmp.dir, "vmm.log");
      const garbage = path.join(tmp.dir, "vmm.log.kernel");
      writeFileSync(garbage, Buffer.alloc(4096, 0x5a));
      const parent = spawnSync(vmmBin, ["-kernel", garbage, "-daemonize", "-D", log], {
        cwd: repoRoot,
        encoding: "utf8",
        timeout: 30000,
      });
      assert.equal(parent.status, 1, parent.stderr);
      assert.match(parent.stderr, /^virga-vmm: error: .+/);
    } finally {
      tmp.cleanup();
    }
  });
});
