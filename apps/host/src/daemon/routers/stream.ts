// A Feed as a tRPC subscription body. Ends when the client unsubscribes
// (signal), when the feed ends, or when the client falls too far behind:
// over the feed's limit (a pulling transport such as SSE), or with too much
// unsent on its websocket (tRPC's ws adapter does not wait for the socket,
// so a client that stops reading is found there and disconnected).
import { TRPCError } from "@trpc/server";
import type { WebSocket } from "ws";
import { SubscriberTooSlowError, type Feed } from "../feed";

export const WS_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export async function* stream<T, R>(
  feed: Feed<T>,
  signal: AbortSignal | undefined,
  ws: WebSocket | null,
  map: (item: T) => R,
  maxBufferedBytes = WS_MAX_BUFFERED_BYTES,
): AsyncGenerator<R, void, unknown> {
  const abort = (): void => {
    feed.close();
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      let item: T | null;
      try {
        item = await feed.next();
      } catch (error) {
        if (error instanceof SubscriberTooSlowError) {
          throw new TRPCError({ code: "TIMEOUT", message: error.message, cause: error });
        }
        throw error;
      }
      if (item === null) return;
      if (ws !== null && ws.bufferedAmount > maxBufferedBytes) {
        ws.terminate();
        return;
      }
      yield map(item);
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    feed.close();
  }
}
