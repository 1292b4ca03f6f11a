// The control-plane host with stand-ins for VM processes (no /dev/kvm): each
// connects to the host's socket and sends its hello with a listening socket
// attached, as virga-vmm does; the host serves QMP on it. One VM's failure
// ends only that VM's part.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import * as native from "@virga/native";
import { QmpClient } from "../qmp/client";
import { socketFd } from "../qmp/fd-passing-socket";
import { socketAnswers } from "../qmp/server";
import { ControlHost } from "./control-host";
import { testConfig } from "./testing/fake-native-vm";

const dir = mkdtempSync(path.join(tmpdir(), "virga-host-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function listening(server: net.Server, ...args: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    (server.listen as (...a: unknown[]) => void)(...args, () => {
      resolve();
    });
  });
}

/** A VM process as the host sees one: the channel, and the lines the host sent on it. */
async function fakeVm(hostSocket: string, name: string) {
  // The QMP listening socket goes to the host; this process stops listening
  // on its own copy (a tcp one: closing it removes no socket file).
  const qmp = net.createServer();
  await listening(qmp, 0, "127.0.0.1");
  const port = (qmp.address() as net.AddressInfo).port;
  const channel = net.connect(hostSocket);
  await new Promise((resolve) => channel.once("connect", resolve));
  let received = "";
  let ended = false;
  channel.setEncoding("utf8");
  channel.on("data", (text: string) => (received += text));
  channel.on("close", () => (ended = true));
  const config = testConfig({ name, qmp: { kind: "tcp", host: "127.0.0.1", port, rateLimit: 0 } });
  const hello = { hello: { config, ptyPath: null, status: "running", pid: process.pid } };
  const listenFd = (qmp as unknown as { _handle: { fd: number } })._handle.fd;
  native.sendWithFds(socketFd(channel) ?? -1, `${JSON.stringify(hello)}\n`, [listenFd]);
  qmp.close();
  return {
    channel,
    address: `tcp:127.0.0.1:${port}`,
    received: () => received,
    ended: () => ended,
  };
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("control-plane host", () => {
  const socketPath = path.join(dir, "host.sock");
  const log: string[] = [];
  let host: ControlHost;
  before(async () => {
    host = await ControlHost.start({
      socketPath,
      socketReader: native.SocketReader,
      sendWithFds: native.sendWithFds,
      log: (line) => log.push(line),
    });
  });
  after(async () => {
    await host.close();
  });

  it("serves each VM's QMP; a VM whose channel breaks ends only its own part", async () => {
    const a = await fakeVm(socketPath, "a");
    const b = await fakeVm(socketPath, "b");
    const clientA = await QmpClient.connect(a.address);
    const clientB = await QmpClient.connect(b.address);
    for (const client of [clientA, clientB]) {
      assert.deepEqual(await client.execute("query-status"), {
        running: true,
        singlestep: false,
        status: "running",
      });
    }
    // Each socket is served by that VM's own control plane.
    for (const [client, vm] of [
      [clientA, a],
      [clientB, b],
    ] as const) {
      const chardevs = (await client.execute("query-chardev")) as { filename: string }[];
      assert.ok(
        chardevs.some((c) => c.filename.startsWith(vm.address)),
        JSON.stringify(chardevs),
      );
    }

    // A line that is not JSON from VM a's process: its part ends, the VM
    // process is told to start it again, and VM b is untouched.
    a.channel.write("this is not JSON\n");
    await waitFor(a.ended, "the host to close VM a's channel");
    assert.match(a.received(), /\{"notice":"restart","message":".*JSON.*"\}\n/);
    await clientA.closed(5000);
    assert.deepEqual(await clientB.execute("query-status"), {
      running: true,
      singlestep: false,
      status: "running",
    });
    assert.ok(log.some((line) => /a \(pid \d+\): control plane failed/.test(line)));

    // VM b's process goes away: its part ends with it.
    b.channel.destroy();
    await clientB.closed(5000);
    await waitFor(() => host.connectionCount === 0, "both connections to be gone");
  });

  it("keeps a watcher's connection without treating it as a VM", async () => {
    const watcher = net.connect(socketPath);
    await new Promise((resolve) => watcher.once("connect", resolve));
    let received = "";
    watcher.on("data", (chunk: Buffer) => (received += chunk.toString()));
    watcher.write('{"watch":true}\n');
    await waitFor(() => host.connectionCount === 1, "the watcher to be counted");
    await sleep(100);
    assert.equal(received, "");
    assert.equal(watcher.destroyed, false);
    watcher.destroy();
    await waitFor(() => host.connectionCount === 0, "the watcher to be gone");
  });

  it("refuses a socket a host answers on, and replaces a stale one", async () => {
    await assert.rejects(
      ControlHost.start({
        socketPath,
        socketReader: native.SocketReader,
        sendWithFds: native.sendWithFds,
        log: () => undefined,
      }),
      /a control-plane host already answers on/,
    );
    // A socket file left by a host that was killed.
    const stale = path.join(dir, "stale.sock");
    spawnSync(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    assert.equal(await socketAnswers(stale), false);
    const second = await ControlHost.start({
      socketPath: stale,
      socketReader: native.SocketReader,
      sendWithFds: native.sendWithFds,
      log: () => undefined,
    });
    try {
      assert.equal(await socketAnswers(stale), true);
    } finally {
      await second.close();
    }
  });
});
