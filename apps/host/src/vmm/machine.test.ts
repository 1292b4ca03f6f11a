import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { QmpEventRecord } from "../qmp/wire";
import { fakeMachine, testConfig } from "./testing/fake-native-vm";

describe("Machine", () => {
  it("runs, pauses and resumes with STOP and RESUME events", () => {
    const { machine, native } = fakeMachine();
    const events: QmpEventRecord[] = [];
    machine.onEvent((e) => events.push(e));
    assert.equal(machine.status(), "running");
    machine.pause();
    machine.pause(); // idempotent, no second STOP
    assert.equal(machine.status(), "paused");
    machine.resume();
    machine.resume();
    assert.equal(machine.status(), "running");
    assert.deepEqual(
      events.map((e) => e.event),
      ["STOP", "RESUME"],
    );
    assert.deepEqual(native.calls, ["start(false)", "pause", "resume"]);
    const ts = events[0]?.timestamp;
    assert.ok(ts !== undefined && Math.abs(ts.seconds - Date.now() / 1000) < 5);
    assert.ok(ts.microseconds >= 0 && ts.microseconds < 1e6);
  });

  it("starts in prelaunch with -S and leaves it on resume", () => {
    const { machine, native } = fakeMachine(testConfig({ startPaused: true }));
    assert.equal(machine.status(), "prelaunch");
    machine.pause();
    assert.equal(machine.status(), "prelaunch");
    machine.resume();
    assert.equal(machine.status(), "running");
    assert.deepEqual(native.calls, ["start(true)", "resume"]);
  });

  it("turns a native guest shutdown into SHUTDOWN and one exit request", () => {
    const { machine, shutdowns } = fakeMachine();
    const events: QmpEventRecord[] = [];
    machine.onEvent((e) => events.push(e));
    machine.handleNativeEvent({ type: "shutdown", reason: "guest-reset" });
    machine.shutdown({ guest: false, reason: "host-signal" });
    assert.equal(machine.status(), "shutdown");
    assert.deepEqual(shutdowns, [{ guest: true, reason: "guest-reset" }]);
    assert.deepEqual(
      events.map((e) => [e.event, e.data]),
      [["SHUTDOWN", { guest: true, reason: "guest-reset" }]],
    );
  });

  it("reports native errors", () => {
    const { machine, errors } = fakeMachine();
    machine.handleNativeEvent({ type: "error", message: "KVM_EXIT_INTERNAL_ERROR" });
    assert.deepEqual(errors, ["KVM_EXIT_INTERNAL_ERROR"]);
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
