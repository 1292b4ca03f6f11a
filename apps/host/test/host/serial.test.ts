// -serial pty, socket and file deliver the guest's console, and pty and
// socket carry input to its shell.
import assert from "node:assert/strict";
import { constants, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import tty from "node:tty";
import { before, describe, it } from "node:test";
import { SerialConsole } from "../support/console";
import { tempDir } from "../support/disk";
import { probeArgs, requireKvmHost, waitForPath, withVmm } from "../support/guest";

const BOOT_MS = 30000;
const TEST = { timeout: 90000 };

/** Input waits in the backend until the guest listens, so one request is enough. */
async function askOnce(console: SerialConsole, timeoutMs = BOOT_MS): Promise<void> {
  console.send("info");
  await console.waitFor(/OK info/, timeoutMs);
}

describe("serial backends", () => {
  before(() => {
    requireKvmHost();
  });

  it("-serial pty: announces the pty like QEMU and carries output and input", TEST, async () => {
    await withVmm([...probeArgs(), "-serial", "pty"], async (vm) => {
      const match = await vm.waitForStderr(
        /char device redirected to (\/dev\/pts\/\d+) \(label serial0\)/,
      );
      const ptyPath = match[1] ?? "";
      const fd = openSync(ptyPath, constants.O_RDWR | constants.O_NOCTTY);
      const stream = new tty.ReadStream(fd);
      stream.setRawMode(true);
      const console = new SerialConsole();
      console.attach(stream, new tty.WriteStream(fd));
      vm.extraConsoles.push({ label: `pty ${ptyPath}`, console });
      try {
        await askOnce(console);
        assert.match(console.text, /PROBE cpus online=1/);
        console.send("poweroff");
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
        assert.equal(vm.serial.text, "", "nothing on stdout with -serial pty");
      } finally {
        stream.destroy();
      }
    });
  });

  it("-serial socket: a unix socket server carries output and input", TEST, async () => {
    const tmp = tempDir();
    try {
      const socketPath = path.join(tmp.dir, "console.sock");
      await withVmm(
        [...probeArgs(), "-serial", `socket,path=${socketPath},server,nowait`],
        async (vm) => {
          await waitForPath(socketPath);
          const socket = net.connect(socketPath);
          const console = new SerialConsole();
          console.attach(socket, socket);
          vm.extraConsoles.push({ label: "socket", console });
          try {
            await askOnce(console);
            assert.match(console.text, /PROBE cpus online=1/);
            console.send("poweroff");
            await console.waitFor(/OK poweroff/);
            assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
          } finally {
            socket.destroy();
          }
        },
      );
    } finally {
      tmp.cleanup();
    }
  });

  it(
    "keeps input typed before the guest listens: it waits in the backend, not lost",
    TEST,
    async () => {
      await withVmm(probeArgs(), async (vm) => {
        // Sent at once, before the guest has even set up its UART.
        vm.send("info");
        vm.send("poweroff");
        await vm.waitFor(/OK info/, BOOT_MS);
        await vm.waitFor(/OK poweroff/, BOOT_MS);
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
    },
  );

  it(
    "keeps piped input whose writer closed before the guest listens (echo poweroff | virga-vmm)",
    TEST,
    async () => {
      await withVmm(probeArgs(), async (vm) => {
        vm.child.stdin?.end("poweroff\n");
        await vm.waitFor(/OK poweroff/, BOOT_MS);
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
    },
  );

  it(
    "-serial socket: a client that hangs up while the guest is not reading costs no CPU",
    TEST,
    async () => {
      const tmp = tempDir();
      try {
        const socketPath = path.join(tmp.dir, "console.sock");
        // -S: the guest never runs, so it never drains input.
        await withVmm(
          [...probeArgs(), "-S", "-serial", `socket,path=${socketPath},server,nowait`],
          async (vm) => {
            await waitForPath(socketPath);
            const socket = net.connect(socketPath);
            // The VMM drops the hung-up client with its input unread: a reset is expected.
            socket.on("error", () => undefined);
            await new Promise((r) => socket.once("connect", r));
            socket.end("typed while nobody listens\n");
            await new Promise((r) => setTimeout(r, 300));
            const cpuTicks = (): number => {
              const fields =
                readFileSync(`/proc/${vm.child.pid ?? 0}/stat`, "utf8")
                  .split(") ")[1]
                  ?.split(" ") ?? [];
              return Number(fields[11]) + Number(fields[12]); // utime + stime
            };
            const before = cpuTicks();
            await new Promise((r) => setTimeout(r, 1000));
            // A spinning I/O thread would burn ~100 ticks in this second.
            assert.ok(
              cpuTicks() - before < 30,
              `the VMM used ${cpuTicks() - before} ticks in 1 s while idle`,
            );
            // And a new client is accepted after the old one left.
            const again = net.connect(socketPath);
            await new Promise((resolve, reject) => {
              again.once("connect", resolve);
              again.once("error", reject);
            });
            again.destroy();
          },
        );
      } finally {
        tmp.cleanup();
      }
    },
  );

  it("-serial socket never replaces a file that is not a socket", TEST, async () => {
    const tmp = tempDir();
    try {
      const precious = path.join(tmp.dir, "precious.txt");
      writeFileSync(precious, "keep me");
      await withVmm(
        [...probeArgs(), "-serial", `socket,path=${precious},server,nowait`],
        async (vm) => {
          assert.deepEqual(await vm.waitForExit(), { code: 1, signal: null });
          assert.match(vm.stderr, /precious\.txt exists and is not a socket/);
        },
      );
      assert.equal(readFileSync(precious, "utf8"), "keep me");
    } finally {
      tmp.cleanup();
    }
  });

  it(
    "bytes a guest writes just before it goes idle reach the console without further exits",
    TEST,
    async () => {
      // virga-vmm lets KVM queue writes to the UART's transmit register; the
      // probe's `emit` writes a line and halts without touching the UART
      // again, so only the VMM's idle replay can deliver it before input comes.
      await withVmm(probeArgs(), async (vm) => {
        await vm.waitFor(/probe> /, BOOT_MS);
        vm.send("emit quiet-line");
        await vm.waitFor(/^quiet-line\r?$/m, 10000);
        vm.send("");
        await vm.waitFor(/OK emit/);
        vm.send("poweroff");
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
    },
  );

  it("output driven by THR-empty interrupts arrives whole and in order", TEST, async () => {
    // The probe's `txirq` sends as Linux's tty layer does: a FIFO's worth
    // per THR-empty interrupt, the writes queued by KVM, and the next
    // interrupt only once virga-vmm has replayed them.
    await withVmm(probeArgs(), async (vm) => {
      await vm.waitFor(/probe> /, BOOT_MS);
      vm.send("txirq 16384");
      await vm.waitFor(/OK txirq/, 60000);
      const lines = vm.serial.lines(/^txirq \d{5} /).map((line) => line.replace(/\r$/, ""));
      assert.equal(lines.length, 256);
      lines.forEach((line, n) => {
        const letters = Array.from({ length: 51 }, (_, i) =>
          String.fromCharCode(97 + ((n + 12 + i) % 26)),
        ).join("");
        assert.equal(line, `txirq ${String(n).padStart(5, "0")} ${letters}`);
      });
      vm.send("txirq 100");
      await vm.waitFor(/ERR txirq usage: txirq <bytes: a multiple of 64, at most 65536>/);
      vm.send("poweroff");
      assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
    });
  });

  it("-serial file: the whole console lands in the file", TEST, async () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, "console.log");
      await withVmm([...probeArgs(), "-serial", `file,path=${file}`], async (vm) => {
        const deadline = Date.now() + BOOT_MS;
        while (!(existsSync(file) && readFileSync(file, "utf8").includes("PROBE ready"))) {
          if (Date.now() > deadline) throw new Error("PROBE ready never reached the file");
          await new Promise((r) => setTimeout(r, 50));
        }
        vm.child.kill("SIGTERM");
        assert.deepEqual(await vm.waitForExit(), { code: 0, signal: null });
      });
      assert.match(readFileSync(file, "utf8"), /PROBE boot entry=linux64[\s\S]*PROBE ready/);
    } finally {
      tmp.cleanup();
    }
  });
});
