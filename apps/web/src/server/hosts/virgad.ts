// Clients for a host's virgad (docs/virgad-api.md): tRPC over HTTP for
// queries and mutations, one shared tRPC websocket per host for
// subscriptions (events, console). The router type comes from apps/host.
// The token goes in the Authorization header of both, never in a URL; an
// https host is reached only through its pinned certificate (pinned-tls.ts).
import {
  createTRPCClient,
  createWSClient,
  httpLink,
  TRPCClientError,
  wsLink,
  type TRPCClient,
} from "@trpc/client";
import { TRPCError } from "@trpc/server";
import type { AppRouter } from "@virga/host/src/daemon/router";
import WebSocket from "ws";
import { agentFetch, pinnedAgent, pinnedTlsOptions } from "@virga/host/src/daemon/pinned-tls";
import { openCredential } from "./credential";
import { HostUnreachableError } from "./unreachable";

export type { AppRouter };
export type {
  ConsoleChunk,
  HostInfo,
  VmEvent,
  VmState,
  VmSummary,
} from "@virga/host/src/daemon/router";

export interface HostTarget {
  id: string;
  url: string;
  /** The Host row's token column: the sealed credential (credential.ts). */
  token: string;
}

export type VirgadClient = TRPCClient<AppRouter>;

interface Entry {
  key: string;
  http: VirgadClient;
  ws: VirgadClient;
  close: () => void;
}

const REQUEST_TIMEOUT_MS = 30_000;
const store = globalThis as typeof globalThis & { __virgaHostClients?: Map<string, Entry> };
const clients = (store.__virgaHostClients ??= new Map<string, Entry>());

function baseUrl(url: string): string {
  return url.replace(/\/+$/, "");
}

/**
 * Redirects are refused, not followed: the portal talks to the address an
 * admin registered and to nothing that address names.
 */
function refuseRedirect(response: Response): Response {
  if (response.status >= 300 && response.status < 400) {
    const location = response.headers.get("location");
    throw new Error(
      `it answered with a redirect (HTTP ${response.status}${location === null ? "" : ` to ${location}`}), ` +
        "which the portal does not follow: give virgad's own URL",
    );
  }
  return response;
}

function createEntry(host: HostTarget): Entry {
  const base = baseUrl(host.url);
  const key = `${base} ${host.token}`;
  const credential = openCredential(host.token);
  const headers = { authorization: `Bearer ${credential.token}` };
  const secure = base.startsWith("https:");
  if (secure && credential.pin === null) {
    throw new Error("no certificate is pinned for this https host; remove and add it again");
  }
  const pin = secure ? credential.pin : null;
  const pinned = pin === null ? null : { agent: pinnedAgent(pin), pin };
  const http = createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${base}/trpc`,
        headers,
        fetch: async (input, init) => {
          const options: RequestInit = {
            ...init,
            redirect: "manual",
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          };
          return refuseRedirect(
            await (pinned === null
              ? fetch(input, options)
              : agentFetch(pinned.agent, pinned.pin)(input, options)),
          );
        },
      }),
    ],
  });
  const wsUrl = new URL(`${base}/trpc`);
  wsUrl.protocol = secure ? "wss:" : "ws:";
  const tls = pin === null ? {} : pinnedTlsOptions(pin);
  // tRPC constructs the socket from the URL alone; the header and the pin ride on a subclass.
  class HostWebSocket extends WebSocket {
    constructor(url: string | URL) {
      super(url, { headers, ...tls });
    }
  }
  const socket = createWSClient({
    url: wsUrl.toString(),
    WebSocket: HostWebSocket as unknown as typeof globalThis.WebSocket,
    retryDelayMs: (attempt) => Math.min(500 * 2 ** attempt, 5000),
    lazy: { enabled: true, closeMs: 10_000 },
  });
  const ws = createTRPCClient<AppRouter>({ links: [wsLink({ client: socket })] });
  return {
    key,
    http,
    ws,
    close: () => {
      void socket.close();
      pinned?.agent.destroy();
    },
  };
}

function entry(host: HostTarget): Entry {
  const key = `${baseUrl(host.url)} ${host.token}`;
  let found = clients.get(host.id);
  if (found === undefined || found.key !== key) {
    found?.close();
    found = createEntry(host);
    clients.set(host.id, found);
  }
  return found;
}

/** Queries and mutations. */
export function virgad(host: HostTarget): VirgadClient {
  return entry(host).http;
}

/** Subscriptions (one websocket per host, resubscribed with lastEventId after a drop). */
export function virgadStream(host: HostTarget): VirgadClient {
  return entry(host).ws;
}

export function forgetHost(hostId: string): void {
  clients.get(hostId)?.close();
  clients.delete(hostId);
}

const KNOWN_CODES = new Set([
  "BAD_REQUEST",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "NOT_FOUND",
  "CONFLICT",
  "PRECONDITION_FAILED",
  "TIMEOUT",
  "TOO_MANY_REQUESTS",
  "INTERNAL_SERVER_ERROR",
]);

/** fetch's "fetch failed" with what it keeps in its causes (ECONNREFUSED <address>, a TLS error). */
function withCauses(error: Error): string {
  let message = error.message;
  let cause = error.cause;
  for (let depth = 0; cause instanceof Error && depth < 4; depth++) {
    if (!message.includes(cause.message)) message += `: ${cause.message}`;
    cause = cause.cause;
  }
  return message;
}

/**
 * A virgad failure as the portal's own TRPCError: virgad's code and message
 * pass through (BAD_REQUEST "config.kernel: ..." stays that), except that
 * virgad refusing the portal's token is the portal's problem, not the caller's,
 * and why a host cannot be reached is for admins (unreachable.ts).
 */
export function hostError(error: unknown, hostName: string): TRPCError {
  if (error instanceof TRPCError) return error;
  if (error instanceof TRPCClientError) {
    const data = (error as TRPCClientError<AppRouter>).data as { code?: string } | undefined;
    const code = data?.code;
    if (code === "UNAUTHORIZED") {
      return new TRPCError({
        code: "BAD_GATEWAY",
        message: `host '${hostName}' refused the portal's token`,
      });
    }
    if (code === "FORBIDDEN" && /needs a token of scope 'full'/.test(error.message)) {
      return new TRPCError({
        code: "FORBIDDEN",
        message: `host '${hostName}' was added with a read-only token: ${error.message}`,
      });
    }
    if (code !== undefined && KNOWN_CODES.has(code)) {
      return new TRPCError({ code: code as TRPCError["code"], message: error.message });
    }
    return new HostUnreachableError(
      hostName,
      `host '${hostName}' unreachable: ${withCauses(error)}`,
    );
  }
  return new HostUnreachableError(
    hostName,
    `host '${hostName}': ${error instanceof Error ? error.message : String(error)}`,
  );
}
