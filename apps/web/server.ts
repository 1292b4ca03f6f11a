// The portal's server: Next.js for the pages, and next to it the parts that
// need a long-lived Node server — the API (tRPC over HTTP, the QMP gateway,
// the OpenAPI document), websocket upgrades for the serial console, and the
// host watchers that follow every virgad's events.
//
// Run: node --import tsx apps/web/server.ts [--dev]
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import path from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import next from "next";
import { WebSocketServer } from "ws";
import { sameOrigin } from "./src/server/auth/principal";
import { bootstrap } from "./src/server/bootstrap";
import { startRetentionSweeps } from "./src/server/retention";
import { db } from "./src/server/db";
import { env } from "./src/server/env";
import { startHostWatchers } from "./src/server/hosts/watcher";
import { handleGateway } from "./src/server/http/gateway";
import { openApiDocument } from "./src/server/http/openapi";
import { callerOf, clientIp, credentialsOf, sendJson } from "./src/server/http/request";
import { CONSOLE_PATH, GATEWAY_PATH, routeOf, socketRouteOf } from "./src/server/http/routes";
import { handleTrpc } from "./src/server/http/trpc-handler";
import { serveConsole } from "./src/server/ws/console";

const webDir = path.dirname(fileURLToPath(import.meta.url));
const dev = process.argv.includes("--dev");

function unauthenticated(res: ServerResponse): void {
  res.setHeader("www-authenticate", "Bearer");
  sendJson(res, 401, {
    error: { code: "UNAUTHORIZED", message: "sign in or send Authorization: Bearer <API token>" },
  });
}

async function handleApi(req: IncomingMessage, res: ServerResponse, pathname: string) {
  const route = routeOf(pathname);
  if (route === null) {
    sendJson(res, 404, { error: { code: "NOT_FOUND", message: `no API route ${pathname}` } });
    return;
  }
  if (route === "openapi") {
    const host = req.headers.host ?? `${env().VIRGA_PORTAL_HOST}:${env().VIRGA_PORTAL_PORT}`;
    sendJson(res, 200, openApiDocument(`http://${host}`));
    return;
  }
  if (route === "health") {
    sendJson(res, 200, { ok: true });
    return;
  }
  const { principal, failure } = await callerOf(req);
  if (failure === "csrf") {
    sendJson(res, 403, {
      error: {
        code: "FORBIDDEN",
        message: "CSRF check failed: send the x-csrf-token header from the virga_csrf cookie",
      },
    });
    return;
  }
  switch (route) {
    case "trpc":
      handleTrpc(req, res, principal);
      return;
    case "gateway":
      if (principal === null) {
        unauthenticated(res);
        return;
      }
      await handleGateway(
        req,
        res,
        decodeURIComponent(GATEWAY_PATH.exec(pathname)?.[1] ?? ""),
        principal,
      );
      return;
    default:
      // A route listed in routes.ts without a handler here does not compile.
      route satisfies never;
  }
}

async function main(): Promise<void> {
  // A promise nobody awaited failing (a busy database, a host that went
  // away mid-call) is logged; it must not end the portal and, through
  // `npm start`, the virgad beside it.
  process.on("unhandledRejection", (reason: unknown) => {
    console.error(
      `[portal] unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
    );
  });
  const settings = env();
  const report = await bootstrap();

  const app = next({
    dev,
    dir: webDir,
    hostname: settings.VIRGA_PORTAL_HOST,
    port: settings.VIRGA_PORTAL_PORT,
  });
  await app.prepare();
  const handleNext = app.getRequestHandler();
  const upgradeNext = app.getUpgradeHandler();
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });

  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url ?? "/", "http://portal");
    if (pathname.startsWith("/api/")) {
      handleApi(req, res, pathname).catch((error: unknown) => {
        console.error(`[api] ${pathname}: ${String(error)}`);
        if (!res.headersSent)
          sendJson(res, 500, {
            error: { code: "INTERNAL_SERVER_ERROR", message: "internal error" },
          });
        else res.end();
      });
      return;
    }
    void handleNext(req, res);
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined);
    const url = new URL(req.url ?? "/", "http://portal");
    const route = socketRouteOf(url.pathname);
    const match = CONSOLE_PATH.exec(url.pathname);
    if (route !== "console" || match === null) {
      // Next's own upgrades are its development server's (hot reload); in
      // production it never answers them, and the socket would stay open.
      if (dev && url.pathname.startsWith("/_next/")) void upgradeNext(req, socket, head);
      else socket.destroy();
      return;
    }
    void (async () => {
      const credentials = credentialsOf(req, true);
      // A browser's websocket carries cookies cross-site: only this origin may use them.
      if (!credentials.queryToken && !credentials.authorization && !sameOrigin(credentials)) {
        socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const { principal } = await callerOf(req, true);
      if (principal === null) {
        socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const sinceText = url.searchParams.get("since");
      const since = sinceText !== null && /^\d+$/.test(sinceText) ? Number(sinceText) : null;
      wss.handleUpgrade(req, socket, head, (ws) => {
        void serveConsole(ws, decodeURIComponent(match[1] ?? ""), since, principal, clientIp(req));
      });
    })().catch(() => socket.destroy());
  });

  const stopWatchers = startHostWatchers();
  const stopSweeps = startRetentionSweeps();
  await new Promise<void>((resolve) =>
    server.listen(settings.VIRGA_PORTAL_PORT, settings.VIRGA_PORTAL_HOST, resolve),
  );
  const address = server.address();
  const port =
    typeof address === "object" && address !== null ? address.port : settings.VIRGA_PORTAL_PORT;
  const url = `http://${settings.VIRGA_PORTAL_HOST}:${port}`;

  console.log(`Virga portal: ${url}${dev ? " (development)" : ""}`);
  if (report.admin !== null) {
    console.log(
      report.admin.password === null
        ? `First admin created: ${report.admin.username} (password from VIRGA_ADMIN_PASSWORD)`
        : `First admin created — shown only this once:\n  username: ${report.admin.username}\n  password: ${report.admin.password}`,
    );
  }
  if (report.localHost !== null)
    console.log(`Local host '${report.localHost}': ${settings.VIRGA_LOCAL_HOST_URL}`);
  if (report.definitions.length > 0)
    console.log(`Definitions added: ${report.definitions.join(", ")}`);

  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    stopWatchers();
    stopSweeps();
    for (const client of wss.clients) client.terminate();
    server.closeAllConnections();
    server.close(() => {
      void db()
        .$disconnect()
        .finally(() => process.exit(0));
    });
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

main().catch((error: unknown) => {
  console.error(
    `portal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  process.exit(1);
});
