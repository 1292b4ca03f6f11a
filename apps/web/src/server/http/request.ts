// From a Node request to the portal's view of it: the caller, and the tRPC
// context built on it. The custom server resolves the caller once, before any
// API handler runs.
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  authenticate,
  CSRF_HEADER,
  sameOrigin,
  type AuthFailure,
  type Credentials,
  type Principal,
} from "../auth/principal";
import type { Context } from "../trpc/trpc";

function header(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  return Array.isArray(value) ? (value[0] ?? null) : (value ?? null);
}

export function credentialsOf(req: IncomingMessage, allowQueryToken = false): Credentials {
  const url = new URL(req.url ?? "/", "http://portal");
  return {
    method: req.method ?? "GET",
    authorization: header(req, "authorization"),
    cookie: header(req, "cookie"),
    csrfHeader: header(req, CSRF_HEADER),
    origin: header(req, "origin"),
    host: header(req, "host"),
    queryToken: allowQueryToken ? url.searchParams.get("token") : null,
  };
}

export function clientIp(req: IncomingMessage): string | null {
  return req.socket.remoteAddress ?? null;
}

export async function callerOf(
  req: IncomingMessage,
  allowQueryToken = false,
): Promise<{ principal: Principal | null; failure: AuthFailure | null }> {
  const result = await authenticate(credentialsOf(req, allowQueryToken));
  return "principal" in result
    ? { principal: result.principal, failure: null }
    : { principal: null, failure: result.failure };
}

export function contextFor(
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal | null,
): Context {
  return {
    principal,
    ip: clientIp(req),
    userAgent: header(req, "user-agent"),
    sameOrigin: sameOrigin({ origin: header(req, "origin"), host: header(req, "host") }),
    setCookies: (cookies) => {
      res.appendHeader("set-cookie", cookies);
    },
    audit: {},
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

export async function readJsonBody(req: IncomingMessage, limit = 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limit) throw new BodyError(413, `body: larger than ${limit} bytes`);
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") throw new BodyError(400, "body: expected a JSON object");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BodyError(400, "body: not valid JSON");
  }
}

export class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
