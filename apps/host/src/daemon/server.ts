// HTTP and websocket front of virgad. The bearer token is checked here,
// before tRPC sees anything: a request or websocket upgrade without it gets
// 401 and never reaches a procedure.
import { timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { Duplex } from "node:stream";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocketServer } from "ws";
import type { Daemon } from "./daemon";
import { appRouter } from "./router";

export const TRPC_PATH = "/trpc";
const MAX_BODY_BYTES = 1024 * 1024;

export interface ServerOptions {
  daemon: Daemon;
  host: string;
  port: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

function tokenMatches(given: string | null, token: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The token from `Authorization: Bearer <token>`, or from `?token=` when allowed (websocket upgrades). */
function presentedToken(req: http.IncomingMessage, allowQuery: boolean): string | null {
  const header = req.headers.authorization;
  if (typeof header === "string") {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match !== null) return match[1] ?? null;
  }
  if (allowQuery) {
    const url = new URL(req.url ?? "/", "http://virgad");
    return url.searchParams.get("token");
  }
  return null;
}

/** A tRPC-shaped error body, so tRPC clients report it like any other error. */
function errorBody(code: string, httpStatus: number, message: string): string {
  return JSON.stringify({
    error: { message, code: code === "UNAUTHORIZED" ? -32001 : -32004, data: { code, httpStatus } },
  });
}

function refuseUpgrade(socket: Duplex, status: string, extra = ""): void {
  socket.end(`HTTP/1.1 ${status}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`);
  socket.destroy();
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { daemon } = options;
  const log = options.log ?? (() => undefined);
  const handler = createHTTPHandler({
    router: appRouter,
    basePath: `${TRPC_PATH}/`,
    // Configs and console input are small; nothing needs more.
    maxBodySize: MAX_BODY_BYTES,
    createContext: () => ({ daemon, authed: true, ws: null }),
    onError: ({ error, path }) => {
      if (error.code === "INTERNAL_SERVER_ERROR") log(`${path ?? "?"}: ${error.message}`);
    },
  });
  const server = http.createServer((req, res) => {
    if (!tokenMatches(presentedToken(req, false), daemon.token)) {
      res.writeHead(401, { "content-type": "application/json", "www-authenticate": "Bearer" });
      res.end(errorBody("UNAUTHORIZED", 401, "missing or invalid bearer token"));
      return;
    }
    const { pathname } = new URL(req.url ?? "/", "http://virgad");
    if (!pathname.startsWith(`${TRPC_PATH}/`)) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(errorBody("NOT_FOUND", 404, `no route ${pathname}; the API is under ${TRPC_PATH}/`));
      return;
    }
    handler(req, res);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  const wsHandler = applyWSSHandler({
    wss,
    router: appRouter,
    createContext: ({ res }) => ({ daemon, authed: true, ws: res }),
    keepAlive: { enabled: true, pingMs: 30000, pongWaitMs: 10000 },
    onError: ({ error, path }) => {
      if (error.code === "INTERNAL_SERVER_ERROR") log(`ws ${path ?? "?"}: ${error.message}`);
    },
  });
  server.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined);
    if (!tokenMatches(presentedToken(req, true), daemon.token)) {
      refuseUpgrade(socket, "401 Unauthorized", "WWW-Authenticate: Bearer\r\n");
      return;
    }
    const { pathname } = new URL(req.url ?? "/", "http://virgad");
    if (pathname !== TRPC_PATH && pathname !== `${TRPC_PATH}/`) {
      refuseUpgrade(socket, "404 Not Found");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      wss.emit("connection", ws, req);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return {
    host: options.host,
    port,
    close: async () => {
      wsHandler.broadcastReconnectNotification();
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}
