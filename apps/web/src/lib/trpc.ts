"use client";
// The browser's tRPC client: batched HTTP for queries and mutations (with the
// CSRF header), server-sent events for subscriptions (which resume with the
// last event id after a drop).
import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
} from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import type { AppRouter } from "@/server/trpc/root";
import { csrfToken } from "./csrf";

export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type RouterInputs = inferRouterInputs<AppRouter>;

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

export function makeTrpcClient() {
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: httpSubscriptionLink({ url: "/api/trpc" }),
        false: httpBatchLink({
          url: "/api/trpc",
          headers: () => ({ "x-csrf-token": csrfToken() }),
        }),
      }),
    ],
  });
}

/** The message of a tRPC error, and the per-field messages when the input was rejected. */
export function errorDetails(error: unknown): { message: string; fields: Record<string, string> } {
  const fields: Record<string, string> = {};
  if (error instanceof TRPCClientError) {
    const data = (error as TRPCClientError<AppRouter>).data as
      { fields?: { path: string; message: string }[] } | undefined;
    for (const field of data?.fields ?? []) fields[field.path] ??= field.message;
    // virgad's errors arrive as "config.kernel: ..." in the message.
    for (const part of error.message.split("; ")) {
      const match = /^([a-zA-Z0-9_.]+): (.+)$/.exec(part);
      if (match?.[1] && match[2] && !(match[1] in fields)) fields[match[1]] = match[2];
    }
    return { message: error.message, fields };
  }
  return { message: error instanceof Error ? error.message : String(error), fields };
}
