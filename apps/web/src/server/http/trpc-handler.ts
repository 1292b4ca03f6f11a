// tRPC over plain HTTP at /api/trpc/<procedure> (queries: GET ?input=,
// mutations: POST JSON, subscriptions: SSE), for the browser and for scripts.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import type { Principal } from "../auth/principal";
import { appRouter } from "../trpc/root";
import { contextFor } from "./request";
import { TRPC_BASE } from "./routes";

const principals = new WeakMap<IncomingMessage, Principal | null>();

const handler = createHTTPHandler({
  router: appRouter,
  basePath: TRPC_BASE,
  createContext: ({ req, res }) => contextFor(req, res, principals.get(req) ?? null),
  onError: ({ error, path }) => {
    if (error.code === "INTERNAL_SERVER_ERROR") {
      console.error(`[trpc] ${path ?? "?"}: ${error.message}`);
    }
  },
});

export function handleTrpc(req: IncomingMessage, res: ServerResponse, principal: Principal | null) {
  principals.set(req, principal);
  handler(req, res);
}
