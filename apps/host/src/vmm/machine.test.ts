import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { QmpEventRecord } from "../qmp/wire";
import { fakeMachine, testConfig } from "./testing/fake-native-vm";

describe("Machine", () => {
  it("runs, pauses and resumes with STOP and RESUME events", async () => {
    const { machine, native } = fakeMachine();
    const events: QmpEventRecord[] = [];
    machine.onEvent((e) => events.push(e));
    assert.equal(machine.status(), "running");
    // Concurrent requests run one at a time: the second pause sees "paused".
    await Promise.all([machine.pause(), machine.pause()]);
    assert.equal(machine.status(), "paused");
    await machine.resume();
    await machine.resume();
    assert.equal(machine.status(), "running");
    assert.deepEqual(
      events.map((e) => e.event),
      ["STOP", "RESUME"],
    );
    assert.deepEqual(native.calls, ["pause", "resume"]);
    const ts = events[0]?.timestamp;
    assert.ok(ts !== undefined && Math.abs(ts.seconds - Date.now() / 1000) < 5);
    assert.ok(ts.microseconds >= 0 && ts.microseconds < 1e6);
  });

  it("starts in prelaunch with -S and leaves it on resume", async () => {
    const { machine, native } = fakeMachine(testConfig({ startPaused: true }));
    assert.equal(machine.status(), "prelaunch");
    await machine.pause();
    assert.equal(machine.status(), "prelaunch");
    await machine.resume();
    assert.equal(machine.status(), "running");
    assert.deepEqual(native.calls, ["resume"]);
  });

  it("emits SHUTDOWN once and asks for one exit", () => {
    const { machine, shutdowns } = fakeMachine();
    const events: QmpEventRecord[] = [];
    machine.onEvent((e) => events.push(e));
    machine.shutdown({ guest: true, reason: "guest-reset" });
    machine.shutdown({ guest: false, reason: "host-signal" });
    assert.equal(machine.status(), "shutdown");
    assert.deepEqual(shutdowns, [{ guest: true, reason: "guest-reset" }]);
    assert.deepEqual(
      events.map((e) => [e.event, e.data]),
      [["SHUTDOWN", { guest: true, reason: "guest-reset" }]],
    );
  });

  it("lists chardevs as QEMU names them", () => {
    const { machine } = fakeMachine(
      testConfig({ qmp: { kind: "unix", path: "/run/q.sock", rateLimit: 100 } }),
    );
    assert.deepEqual(machine.chardevs(), [
      { label: "serial0", filename: "pty:/dev/pts/99", frontendOpen: true },
      { label: "compat_monitor0", filename: "unix:/run/q.sock,server=on", frontendOpen: true },
    ]);
  });
});
