// virgad talking to another virgad: the destination of a live migration,
// given by its URL and bearer token as the portal knows them. Its errors
// come back as DaemonErrors naming the destination, with its own code
// (a CONFLICT there is a CONFLICT here), so the caller of vm.migrate sees
// why the destination refused.
import { createTRPCClient, httpLink, TRPCClientError, type TRPCClient } from "@trpc/client";
import type { AppRouter } from "./router";
import { DaemonError, messageOf, type DaemonErrorCode } from "./errors";

export type PeerClient = TRPCClient<AppRouter>;

const REQUEST_TIMEOUT_MS = 30000;
const PASSED_CODES = new Set<DaemonErrorCode>([
  "BAD_REQUEST",
  "NOT_FOUND",
  "CONFLICT",
  "FORBIDDEN",
  "PRECONDITION_FAILED",
  "TIMEOUT",
]);

export function peerClient(url: string, token: string): PeerClient {
  return createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${url.replace(/\/+$/, "")}/trpc`,
        headers: { authorization: `Bearer ${token}` },
        fetch: (input: string | URL | Request, init?: RequestInit) =>
          fetch(input, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }),
      }),
    ],
  });
}

/** A failed call to the destination as this virgad's own error. */
export function peerError(error: unknown, url: string): DaemonError {
  if (error instanceof DaemonError) return error;
  if (error instanceof TRPCClientError) {
    const code = (error.data as { code?: string } | undefined)?.code;
    if (code === "UNAUTHORIZED") {
      return new DaemonError(
        "BAD_REQUEST",
        `destination.token: the virgad at ${url} refused the token`,
      );
    }
    if (code !== undefined && PASSED_CODES.has(code as DaemonErrorCode)) {
      return new DaemonError(code as DaemonErrorCode, `destination ${url}: ${error.message}`);
    }
    if (code === undefined) {
      return new DaemonError(
        "BAD_REQUEST",
        `destination.url: no virgad answers at ${url} (${error.message})`,
      );
    }
  }
  return new DaemonError("INTERNAL_SERVER_ERROR", `destination ${url}: ${messageOf(error)}`);
}

/** Calls the destination, its failures as DaemonErrors. */
export async function onPeer<T>(
  client: PeerClient,
  url: string,
  call: (client: PeerClient) => Promise<T>,
): Promise<T> {
  try {
    return await call(client);
  } catch (error) {
    throw peerError(error, url);
  }
}
