// Every route the custom server answers beside the pages, by name. server.ts
// dispatches through routeOf/socketRouteOf with an exhaustive switch, so a
// route exists only once it is listed here, and the auth matrix test
// (test/auth-matrix.test.ts) is built from these lists: a new route cannot
// be left out of it.
// Plain patterns only: the test imports this file without the handlers.

/** `/api/trpc/<procedure>`: tRPC over HTTP (trpc-handler.ts). */
export const TRPC_BASE = "/api/trpc/";
/** `POST /api/v1/vms/{id}/qmp`: the HTTP-to-QMP gateway (gateway.ts). */
export const GATEWAY_PATH = /^\/api\/v1\/vms\/([^/]+)\/qmp\/?$/;
/** `ws /api/v1/vms/{id}/console`: the serial console (ws/console.ts). */
export const CONSOLE_PATH = /^\/api\/v1\/vms\/([^/]+)\/console\/?$/;

export const API_ROUTES = {
  openapi: (pathname: string) => pathname === "/api/v1/openapi.json",
  health: (pathname: string) => pathname === "/api/health",
  trpc: (pathname: string) => pathname.startsWith(TRPC_BASE),
  gateway: (pathname: string) => GATEWAY_PATH.test(pathname),
} as const;

export type ApiRoute = keyof typeof API_ROUTES;

export const SOCKET_ROUTES = {
  console: (pathname: string) => CONSOLE_PATH.test(pathname),
} as const;

export type SocketRoute = keyof typeof SOCKET_ROUTES;

function first<Name extends string>(
  routes: Record<Name, (pathname: string) => boolean>,
  pathname: string,
): Name | null {
  for (const name of Object.keys(routes) as Name[]) if (routes[name](pathname)) return name;
  return null;
}

export const routeOf = (pathname: string): ApiRoute | null => first(API_ROUTES, pathname);
export const socketRouteOf = (pathname: string): SocketRoute | null =>
  first(SOCKET_ROUTES, pathname);
