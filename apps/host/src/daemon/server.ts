// HTTP(S) and websocket front of virgad. The bearer token is checked here,
// before tRPC sees anything: a request or websocket upgrade without one of
// virgad's tokens gets 401 and never reaches a procedure; the token's scope
// goes into the context (trpc.ts refuses mutations to a "read" token). The
// token only ever travels in the Authorization header, websockets included:
// URLs end up in logs and proxies.
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocketServer } from "ws";
import { scopeOf } from "./credentials";
import type { Daemon } from "./daemon";
import { appRouter } from "./router";

export const TRPC_PATH = "/trpc";
const MAX_BODY_BYTES = 1024 * 1024;

export interface ServerOptions {
  daemon: Daemon;
  host: string;
  port: number;
  log?: (line: string) => void;
  /** Serve HTTPS and WSS with this certificate (tls.ts); plain HTTP without. */
  tls?: { cert: string; key: string };
}

export interface RunningServer {
  host: string;
  port: number;
  scheme: "http" | "https";
  close(): Promise<void>;
}

/** The token from `Authorization: Bearer <token>`; nothing else is read (no `?token=`). */
function presentedToken(req: http.IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (typeof header !== "string") return null;
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? null;
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
    createContext: ({ req }) => ({
      daemon,
      scope: scopeOf(presentedToken(req), daemon.tokens),
      ws: null,
    }),
    onError: ({ error, path }) => {
      if (error.code === "INTERNAL_SERVER_ERROR") log(`${path ?? "?"}: ${error.message}`);
    },
  });
  const listener: http.RequestListener = (req, res) => {
    if (scopeOf(presentedToken(req), daemon.tokens) === null) {
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
  };
  const server =
    options.tls === undefined
      ? http.createServer(listener)
      : https.createServer({ cert: options.tls.cert, key: options.tls.key }, listener);

  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  const wsHandler = applyWSSHandler({
    wss,
    router: appRouter,
    createContext: ({ req, res }) => ({
      daemon,
      scope: scopeOf(presentedToken(req), daemon.tokens),
      ws: res,
    }),
    keepAlive: { enabled: true, pingMs: 30000, pongWaitMs: 10000 },
    onError: ({ error, path }) => {
      if (error.code === "INTERNAL_SERVER_ERROR") log(`ws ${path ?? "?"}: ${error.message}`);
    },
  });
  server.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined);
    if (scopeOf(presentedToken(req), daemon.tokens) === null) {
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
    scheme: options.tls === undefined ? "http" : "https",
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
