// Subscription bodies drop a client that falls behind: over the feed's limit
// (a pulling transport), or with too much unsent on its websocket.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TRPCError } from "@trpc/server";
import type { WebSocket } from "ws";
import { Feed } from "../feed";
import { stream } from "./stream";

function fakeSocket(bufferedAmount: number) {
  const socket = { bufferedAmount, terminated: false, terminate: () => (socket.terminated = true) };
  return socket;
}

describe("subscription stream", () => {
  it("passes items through and ends with the feed", async () => {
    const feed = new Feed<number>(100);
    feed.push(1, 1);
    feed.push(2, 1);
    feed.close();
    const got: number[] = [];
    for await (const item of stream(feed, undefined, null, (n) => n * 10)) got.push(item);
    assert.deepEqual(got, [10, 20]);
  });

  it("ends when the client unsubscribes, even while waiting", async () => {
    const feed = new Feed<number>(100);
    const controller = new AbortController();
    const body = stream(feed, controller.signal, null, (n) => n);
    const next = body.next();
    controller.abort();
    assert.deepEqual(await next, { done: true, value: undefined });
    assert.equal(feed.isClosed, true);
  });

  it("fails a subscriber over the feed's limit with TIMEOUT", async () => {
    const feed = new Feed<number>(2);
    feed.push(1, 1);
    feed.push(2, 2);
    await assert.rejects(
      stream(feed, undefined, null, (n) => n).next(),
      (error: unknown) => error instanceof TRPCError && error.code === "TIMEOUT",
    );
  });

  it("disconnects a websocket that stopped reading", async () => {
    const feed = new Feed<number>(100);
    const socket = fakeSocket(10_000);
    feed.push(1, 1);
    const body = stream(feed, undefined, socket as unknown as WebSocket, (n) => n, 1000);
    assert.deepEqual(await body.next(), { done: true, value: undefined });
    assert.equal(socket.terminated, true);
    assert.equal(feed.isClosed, true);
  });
});
