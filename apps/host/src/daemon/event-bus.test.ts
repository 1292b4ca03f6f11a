import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { EventBus, type VmEvent } from "./event-bus";
import type { Feed } from "./feed";

const dir = mkdtempSync(path.join(tmpdir(), "virgad-events-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function take(feed: Feed<VmEvent>, count: number): Promise<VmEvent[]> {
  const out: VmEvent[] = [];
  while (out.length < count) {
    const event = await feed.next();
    if (event === null) break;
    out.push(event);
  }
  return out;
}

describe("EventBus", () => {
  it("numbers events, filters by VM and resumes after a seq", async () => {
    const bus = new EventBus(null);
    const all = bus.subscribe();
    const onlyA = bus.subscribe("a");
    bus.publish("a", "STOP", {});
    bus.publish("b", "STOP", {});
    bus.publish("a", "RESUME", {});
    assert.deepEqual(
      (await take(all, 3)).map((e) => [e.seq, e.vmId, e.event]),
      [
        [1, "a", "STOP"],
        [2, "b", "STOP"],
        [3, "a", "RESUME"],
      ],
    );
    assert.deepEqual(
      (await take(onlyA, 2)).map((e) => e.seq),
      [1, 3],
    );
    const resumed = bus.subscribe(undefined, 1);
    assert.deepEqual(
      (await take(resumed, 2)).map((e) => e.seq),
      [2, 3],
    );
    bus.close();
  });

  it("continues its numbering and keeps recent events across restarts", async () => {
    const file = path.join(dir, "events.jsonl");
    const first = new EventBus(file);
    first.publish("a", "VM_CREATED", { name: "a" });
    first.publish("a", "VM_STATE", { state: "running" });
    first.close();
    const second = new EventBus(file);
    assert.equal(second.lastSeq, 2);
    const missed = second.subscribe(undefined, 1);
    assert.deepEqual(
      (await take(missed, 1)).map((e) => [e.seq, e.event]),
      [[2, "VM_STATE"]],
    );
    assert.equal(second.publish("a", "STOP", {}).seq, 3);
    second.close();
  });

  it("has an event on disk before a subscriber gets it (a kill right after cannot reuse its seq)", async () => {
    const file = path.join(dir, "killed.jsonl");
    const bus = new EventBus(file);
    const feed = bus.subscribe();
    bus.publish("a", "STOP", {});
    // Before any await: what a virgad started right after a SIGKILL now would find.
    assert.equal(new EventBus(file).lastSeq, 1);
    assert.deepEqual(
      (await take(feed, 1)).map((e) => e.seq),
      [1],
    );
    bus.close();
  });
});
