// The QMP wire protocol end to end over a real unix socket, with the real
// Machine over a fake native VM (no /dev/kvm needed).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fakeMachine, testConfig } from "../vmm/testing/fake-native-vm";
import { QmpClient } from "./client";
import { COMMAND_TABLE } from "./commands/index";
import { QmpServer } from "./server";

const dir = mkdtempSync(path.join(tmpdir(), "virga-qmp-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function startServer(name: string, rateLimit = 100, config = testConfig()) {
  const socketPath = path.join(dir, name);
  const fake = fakeMachine({ ...config, qmp: { kind: "unix", path: socketPath, rateLimit } });
  const server = new QmpServer({
    endpoint: { kind: "unix", path: socketPath, rateLimit },
    vm: fake.machine,
    table: COMMAND_TABLE,
  });
  await server.listen();
  return { ...fake, server, socketPath };
}

/** Raw lines from a socket, for byte-level checks. */
function rawConnection(socketPath: string) {
  const socket = net.connect(socketPath);
  let data = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (data += chunk));
  const lines = async (count: number, timeoutMs = 3000): Promise<string[]> => {
    const deadline = Date.now() + timeoutMs;
    while (data.split("\r\n").length - 1 < count) {
      if (Date.now() > deadline) throw new Error(`only got: ${JSON.stringify(data)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return data.split("\r\n").slice(0, count);
  };
  return { socket, lines, all: () => data };
}

describe("QMP server", () => {
  let vm: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    vm = await startServer("main.sock");
  });
  after(async () => {
    await vm.server.close();
  });

  it("greets exactly as QMP.md says, with \\r\\n line ends", async () => {
    const raw = rawConnection(vm.socketPath);
    const [greeting] = await raw.lines(1);
    assert.equal(
      greeting,
      '{"QMP":{"version":{"qemu":{"micro":1,"minor":0,"major":5},"package":"Virga-0.1.0"},"capabilities":[]}}',
    );
    assert.ok(raw.all().endsWith("}\r\n"));
    raw.socket.destroy();
  });

  it("creates the socket with mode 0600", () => {
    assert.equal(statSync(vm.socketPath).mode & 0o777, 0o600);
  });

  it("answers several commands in one write and one command split across writes", async () => {
    const raw = rawConnection(vm.socketPath);
    await raw.lines(1);
    raw.socket.write(
      '{"execute":"qmp_capabilities"}{"execute":"query-status","id":1}\n{"execute":"query-st',
    );
    await new Promise((r) => setTimeout(r, 30));
    raw.socket.write('atus","id":"two"}');
    const lines = await raw.lines(4);
    assert.deepEqual(
      lines.slice(1).map((l) => JSON.parse(l) as unknown),
      [
        { return: {} },
        { return: { running: true, singlestep: false, status: "running" }, id: 1 },
        { return: { running: true, singlestep: false, status: "running" }, id: "two" },
      ],
    );
    raw.socket.destroy();
  });

  it("echoes ids of any JSON type, on success and on error", async () => {
    const client = await QmpClient.connect(vm.socketPath);
    const ids: unknown[] = [0, -1.5, "s", null, true, [1, "a"], { nested: { x: 1 } }];
    for (const id of ids) {
      client.sendRaw(JSON.stringify({ execute: "query-kvm", id }));
      client.sendRaw(JSON.stringify({ execute: "no-such", id }));
    }
    const replies = await (async () => {
      const deadline = Date.now() + 3000;
      while (client.messages.length < 1 + ids.length * 2 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      return client.messages.slice(1);
    })();
    assert.equal(replies.length, ids.length * 2);
    ids.forEach((id, i) => {
      assert.deepEqual(replies[2 * i], { return: { enabled: true, present: true }, id });
      assert.deepEqual(replies[2 * i + 1], {
        error: { class: "CommandNotFound", desc: "The command no-such has not been found" },
        id,
      });
    });
    client.close();
  });

  it("rejects unknown argument keys naming the key, and wrong types", async () => {
    const client = await QmpClient.connect(vm.socketPath);
    assert.deepEqual(await client.request("query-status", { verbose: true }), {
      error: { class: "GenericError", desc: "Parameter 'verbose' is unexpected" },
      id: "c1",
    });
    const wrongType = await client.request("qmp_capabilities", { enable: "oob" });
    assert.ok(wrongType.error);
    assert.equal(wrongType.error.class, "GenericError");
    assert.match(wrongType.error.desc, /'enable'.*expected: array/);
    client.close();
  });

  it("reports bad input as GenericError and keeps the connection usable", async () => {
    const client = await QmpClient.connect(vm.socketPath);
    const cases = [
      "{bad json}",
      "[1,2]",
      "42",
      '{"execute":1}',
      '{"execute":"query-status","arguments":[]}',
      '{"execute":"query-status","extra":1}',
      JSON.stringify({ execute: "x", arguments: { pad: "a".repeat(70000) } }),
    ];
    for (const text of cases) client.sendRaw(text + "\n");
    const ok = await client.execute("query-status");
    assert.deepEqual(ok, { running: true, singlestep: false, status: "running" });
    const errors = client.messages.filter((m) => "error" in m);
    assert.equal(errors.length, cases.length);
    for (const e of errors) assert.equal((e.error as { class: string }).class, "GenericError");
    const descs = errors.map((e) => (e.error as { desc: string }).desc).join("\n");
    assert.match(descs, /JSON parse error/);
    assert.match(descs, /QMP input must be a JSON object/);
    assert.match(descs, /'execute' must be a string/);
    assert.match(descs, /'arguments' must be an object/);
    assert.match(descs, /QMP input member 'extra' is unexpected/);
    assert.match(descs, /message larger than 65536 bytes/);
    client.close();
  });

  it("writes STOP before stop's return and RESUME before cont's, to every client", async () => {
    const a = await QmpClient.connect(vm.socketPath);
    const b = await QmpClient.connect(vm.socketPath);
    await a.execute("stop");
    const stopIndex = a.messages.findIndex((m) => m.event === "STOP");
    const returnIndex = a.messages.findIndex((m) => m.id === "c1");
    assert.ok(stopIndex > 0 && stopIndex < returnIndex, JSON.stringify(a.messages));
    assert.deepEqual(await a.execute("query-status"), {
      running: false,
      singlestep: false,
      status: "paused",
    });
    await b.waitForEvent("STOP");
    await a.execute("cont");
    const resume = await b.waitForEvent("RESUME");
    assert.deepEqual(resume.data, {});
    assert.equal(typeof resume.timestamp.seconds, "number");
    assert.equal(typeof resume.timestamp.microseconds, "number");
    a.close();
    b.close();
  });

  it("answers the vCPU queries from the topology", async () => {
    const client = await QmpClient.connect(vm.socketPath);
    assert.deepEqual(await client.execute("query-cpus"), [
      {
        CPU: 0,
        arch: "x86",
        current: true,
        halted: false,
        props: { "core-id": 0, "socket-id": 0, "thread-id": 0 },
        qom_path: "/machine/unattached/device[0]",
        thread_id: 10000,
      },
      {
        CPU: 1,
        arch: "x86",
        current: true,
        halted: false,
        props: { "core-id": 1, "socket-id": 0, "thread-id": 0 },
        qom_path: "/machine/unattached/device[1]",
        thread_id: 10001,
      },
    ]);
    const fast = (await client.execute("query-cpus-fast")) as Record<string, unknown>[];
    assert.deepEqual(fast[1], {
      "cpu-index": 1,
      "qom-path": "/machine/unattached/device[1]",
      "thread-id": 10001,
      props: { "core-id": 1, "socket-id": 0, "thread-id": 0 },
      target: "x86_64",
    });
    // maxcpus=4 (2 sockets x 2 cores), 2 online: qom-path only on 0 and 1.
    assert.deepEqual(await client.execute("query-hotpluggable-cpus"), [
      {
        props: { "core-id": 0, "socket-id": 0, "thread-id": 0 },
        "qom-path": "/machine/unattached/device[0]",
        type: "host-x86-cpu",
        "vcpus-count": 1,
      },
      {
        props: { "core-id": 1, "socket-id": 0, "thread-id": 0 },
        "qom-path": "/machine/unattached/device[1]",
        type: "host-x86-cpu",
        "vcpus-count": 1,
      },
      {
        props: { "core-id": 0, "socket-id": 1, "thread-id": 0 },
        type: "host-x86-cpu",
        "vcpus-count": 1,
      },
      {
        props: { "core-id": 1, "socket-id": 1, "thread-id": 0 },
        type: "host-x86-cpu",
        "vcpus-count": 1,
      },
    ]);
    client.close();
  });

  it("answers the introspection queries", async () => {
    const client = await QmpClient.connect(vm.socketPath);
    assert.deepEqual(await client.execute("query-version"), {
      qemu: { micro: 1, minor: 0, major: 5 },
      package: "Virga-0.1.0",
    });
    const commands = (await client.execute("query-commands")) as { name: string }[];
    for (const name of [
      "query-status",
      "stop",
      "cont",
      "quit",
      "query-cpus",
      "query-hotpluggable-cpus",
    ]) {
      assert.ok(
        commands.some((c) => c.name === name),
        name,
      );
    }
    const events = (await client.execute("query-events")) as { name: string }[];
    assert.ok(events.some((e) => e.name === "SHUTDOWN"));
    assert.deepEqual(await client.execute("query-target"), { arch: "x86_64" });
    const machines = (await client.execute("query-machines")) as { name: string }[];
    assert.equal(machines[0]?.name, "microvm");
    const chardevs = (await client.execute("query-chardev")) as { label: string }[];
    assert.deepEqual(
      chardevs.map((c) => c.label),
      ["serial0", "compat_monitor0"],
    );
    assert.deepEqual(await client.execute("system_reset"), {});
    assert.deepEqual(await client.execute("system_powerdown"), {});
    client.close();
  });

  it("throttles a client over its rate with OperationThrottled, per client", async () => {
    const limited = await startServer("limited.sock", 10);
    try {
      const flood = await QmpClient.connect(limited.socketPath);
      for (let i = 0; i < 30; i++) flood.sendRaw(`{"execute":"query-status","id":${i}}`);
      const deadline = Date.now() + 3000;
      while (flood.messages.length < 31 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 5));
      const replies = flood.messages.slice(1);
      const throttled = replies.filter(
        (m) => (m.error as { class?: string } | undefined)?.class === "OperationThrottled",
      );
      assert.ok(throttled.length >= 15, `throttled ${throttled.length}`);
      assert.ok(replies.length - throttled.length >= 10);
      // Another client has its own budget.
      const other = await QmpClient.connect(limited.socketPath);
      assert.deepEqual(await other.execute("query-kvm"), { enabled: true, present: true });
      flood.close();
      other.close();
    } finally {
      await limited.server.close();
    }
  });

  it("answers quit with {}, then SHUTDOWN, then asks the process to end", async () => {
    const own = await startServer("quit.sock");
    const client = await QmpClient.connect(own.socketPath);
    const watcher = await QmpClient.connect(own.socketPath);
    await client.execute("quit");
    const shutdown = await client.waitForEvent("SHUTDOWN");
    assert.deepEqual(shutdown.data, { guest: false, reason: "host-qmp-quit" });
    const order = client.messages.map((m) => ("return" in m ? "return" : (m.event ?? "greeting")));
    assert.deepEqual(order, ["greeting", "return", "SHUTDOWN"]);
    assert.deepEqual(own.shutdowns, [{ guest: false, reason: "host-qmp-quit" }]);
    await watcher.waitForEvent("SHUTDOWN");
    await own.server.close();
    await client.closed();
    assert.equal(existsSync(own.socketPath), false);
  });

  it("replaces a stale socket file and refuses one in use", async () => {
    const stale = path.join(dir, "stale.sock");
    writeFileSync(stale, "left over");
    const fake = fakeMachine();
    const server = new QmpServer({
      endpoint: { kind: "unix", path: stale, rateLimit: 100 },
      vm: fake.machine,
      table: COMMAND_TABLE,
    });
    await server.listen();
    const second = new QmpServer({
      endpoint: { kind: "unix", path: stale, rateLimit: 100 },
      vm: fake.machine,
      table: COMMAND_TABLE,
    });
    await assert.rejects(second.listen(), /in use by another process/);
    await server.close();
  });

  it("serves tcp as well", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const address = probe.address();
        probe.close(() => {
          resolve(typeof address === "object" && address !== null ? address.port : 0);
        });
      });
    });
    const fake = fakeMachine();
    const server = new QmpServer({
      endpoint: { kind: "tcp", host: "127.0.0.1", port, rateLimit: 100 },
      vm: fake.machine,
      table: COMMAND_TABLE,
    });
    await server.listen();
    const client = await QmpClient.connect(server.address());
    assert.deepEqual(await client.execute("query-status"), {
      running: true,
      singlestep: false,
      status: "running",
    });
    client.close();
    await server.close();
  });
});
