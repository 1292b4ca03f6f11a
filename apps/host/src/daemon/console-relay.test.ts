// The console relay without a VMM: scrollback by offset, the console file
// across restarts and compaction, and subscribers that fall behind.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ConsoleRelay, type ConsoleBytes } from "./console-relay";
import { Feed, SubscriberTooSlowError } from "./feed";
import { Scrollback } from "./scrollback";

const root = mkdtempSync(path.join(tmpdir(), "virgad-relay-"));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
function freshDir(): string {
  return mkdtempSync(path.join(root, "vm-"));
}

async function drain(feed: Feed<ConsoleBytes>): Promise<{ offset: number; text: string }> {
  let text = "";
  let offset = -1;
  while (feed.pending > 0) {
    const item = await feed.next();
    if (item === null) break;
    if (offset < 0) offset = item.offset;
    text += item.data.toString("utf8");
  }
  return { offset, text };
}

describe("Scrollback", () => {
  it("keeps the last bytes with absolute offsets", () => {
    const s = new Scrollback(10);
    s.append(Buffer.from("0123456"));
    s.append(Buffer.from("789abcd"));
    assert.equal(s.start, 4);
    assert.equal(s.end, 14);
    assert.equal(s.readFrom(0).data.toString(), "456789abcd");
    assert.equal(s.readFrom(0).offset, 4);
    assert.equal(s.readFrom(12).data.toString(), "cd");
    assert.equal(s.readFrom(99).data.length, 0);
  });

  it("gives the last lines without line ends", () => {
    const s = new Scrollback(100);
    s.append(Buffer.from("a\r\nb\nc\n"));
    assert.deepEqual(s.lastLines(2), ["b", "c"]);
    s.append(Buffer.from("prompt> "));
    assert.deepEqual(s.lastLines(2), ["c", "prompt> "]);
  });
});

describe("Feed", () => {
  it("drops a subscriber over its limit and tells it why", async () => {
    const feed = new Feed<string>(10);
    assert.equal(feed.push("aaaaa", 5), true);
    assert.equal(feed.push("bbbbbb", 6), false);
    assert.equal(feed.isClosed, true);
    await assert.rejects(feed.next(), SubscriberTooSlowError);
  });

  it("preloads a backlog past the limit, then counts only what is unread", async () => {
    const feed = new Feed<string>(4);
    feed.preload("backlog", 7);
    assert.equal(await feed.next(), "backlog");
    assert.equal(feed.push("abcd", 4), true);
    assert.equal(await feed.next(), "abcd");
    feed.close();
    assert.equal(await feed.next(), null);
  });
});

describe("ConsoleRelay", () => {
  it("fans output out; a late subscriber starts with the scrollback", async () => {
    const relay = new ConsoleRelay(freshDir());
    const early = relay.subscribe();
    relay.ingest(Buffer.from("PROBE boot\n"));
    relay.ingest(Buffer.from("PROBE ready\n"));
    const late = relay.subscribe();
    assert.deepEqual(await drain(early), { offset: 0, text: "PROBE boot\nPROBE ready\n" });
    assert.deepEqual(await drain(late), { offset: 0, text: "PROBE boot\nPROBE ready\n" });
    const resumed = relay.subscribe(11);
    assert.deepEqual(await drain(resumed), { offset: 11, text: "PROBE ready\n" });
    await relay.close();
  });

  it("drops a subscriber that stops reading; the others and the scrollback go on", async () => {
    const relay = new ConsoleRelay(freshDir(), { maxPendingBytes: 1000 });
    const stuck = relay.subscribe();
    const reader = relay.subscribe();
    let got = 0;
    for (let i = 0; i < 50; i++) {
      relay.ingest(Buffer.alloc(100, 0x61));
      got += (await drain(reader)).text.length;
    }
    assert.equal(got, 5000);
    assert.equal(stuck.isClosed, true);
    await assert.rejects(stuck.next(), SubscriberTooSlowError);
    assert.equal(relay.subscriberCount, 1);
    assert.equal(relay.end, 5000);
    await relay.close();
  });

  it("keeps the bytes on disk: a new relay on the same folder continues the offsets", async () => {
    const dir = freshDir();
    const first = new ConsoleRelay(dir);
    first.ingest(Buffer.from("PROBE ready\nprobe> "));
    await first.close();
    const second = new ConsoleRelay(dir);
    assert.equal(second.end, 19);
    assert.deepEqual(second.lastLines(1), ["probe> "]);
    second.ingest(Buffer.from("count 1\n"));
    assert.deepEqual(await drain(second.subscribe(19)), { offset: 19, text: "count 1\n" });
    await second.close();
  });

  it("letting go of a running VMM keeps what it sent until it saw the client leave", async () => {
    // Stands in for virga-vmm's socket: on the client's half-close it sends
    // what the guest printed meanwhile, then ends (later output is held
    // for its next client).
    const socketPath = path.join(freshDir(), "console.sock");
    const vmm = net.createServer({ allowHalfOpen: true }, (client) => {
      client.write("count 1\n");
      client.on("end", () => client.end("count 2\n"));
    });
    await new Promise<void>((resolve) => vmm.listen(socketPath, resolve));
    const dir = freshDir();
    const relay = new ConsoleRelay(dir);
    let endedByVmm = false;
    await relay.connect(socketPath, () => (endedByVmm = true));
    const live = relay.subscribe();
    assert.deepEqual(await live.next(), { offset: 0, data: Buffer.from("count 1\n") });
    await relay.close();
    vmm.close();
    assert.equal(endedByVmm, false, "a close of its own is not the VMM going away");
    const reopened = new ConsoleRelay(dir);
    assert.equal(reopened.end, 16);
    assert.deepEqual(reopened.lastLines(2), ["count 1", "count 2"]);
    await reopened.close();
  });

  it("compacts the console file to the scrollback, keeping offsets", async () => {
    const dir = freshDir();
    const relay = new ConsoleRelay(dir, { scrollbackBytes: 100, fileMaxBytes: 300 });
    for (let i = 0; i < 40; i++) relay.ingest(Buffer.from(`line ${String(i).padStart(3, "0")}\n`));
    await relay.close();
    const files = readdirSync(dir).filter((name) => name.startsWith("console."));
    assert.equal(files.length, 1, files.join(", "));
    const reopened = new ConsoleRelay(dir, { scrollbackBytes: 100 });
    assert.equal(reopened.end, 40 * 9);
    assert.deepEqual(reopened.lastLines(1), ["line 039"]);
    await reopened.close();
  });
});
