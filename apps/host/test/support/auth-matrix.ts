// What virgad's and the portal's auth matrix tests share: the procedures
// of a tRPC router as its own record lists them, the check that a table
// names exactly those, and what an endpoint answered, read the same way for
// both (a plain JSON reply, tRPC's error shape or the portal's
// {"error": {"code", "message"}}, or the first thing a subscription sends
// over SSE) and whether it was an auth refusal.
import assert from "node:assert/strict";

/** A router's procedures, path → query, mutation or subscription, from the router itself. */
export function routerProcedures(router: { _def: { procedures: object } }): Map<string, string> {
  const record = router._def.procedures as Record<string, { _def: { type: string } }>;
  return new Map(Object.entries(record).map(([name, procedure]) => [name, procedure._def.type]));
}

/** Fails unless `table` names every procedure of the router and nothing else. */
export function assertCoversRouter(procedures: Map<string, string>, table: object): void {
  const names = [...procedures.keys()].sort();
  assert.deepEqual(
    names.filter((name) => !(name in table)),
    [],
    "procedures missing from the matrix's table",
  );
  assert.deepEqual(
    Object.keys(table).filter((name) => !names.includes(name)),
    [],
    "procedures in the table that the router does not have",
  );
}

export interface Reply {
  status: number;
  /** The tRPC error code (UNAUTHORIZED, FORBIDDEN, BAD_REQUEST...), null for data. */
  code: string | null;
  message: string;
}

export type AuthOutcome = "allowed" | "UNAUTHORIZED" | "FORBIDDEN";

/** An auth refusal, or anything else (data, or an error about the input or its target). */
export function outcomeOf(reply: Reply): AuthOutcome {
  if (reply.status === 401 || reply.code === "UNAUTHORIZED") return "UNAUTHORIZED";
  if (reply.status === 403 || reply.code === "FORBIDDEN") return "FORBIDDEN";
  return "allowed";
}

export async function jsonReply(response: Response): Promise<Reply> {
  const text = await response.text();
  let body: { error?: { message?: string; code?: unknown; data?: { code?: string } } } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // not JSON: the status says enough
  }
  const code = body.error?.data?.code ?? body.error?.code;
  return {
    status: response.status,
    code: typeof code === "string" ? code : null,
    message: body.error?.message ?? text.slice(0, 200),
  };
}

/**
 * A subscription over SSE: tRPC answers 200 and sends a refusal as its
 * first event, so the first event (past `connected` and pings) is read.
 */
export async function sseReply(url: string, headers: Record<string, string>): Promise<Reply> {
  const abort = new AbortController();
  const timer = setTimeout(() => {
    abort.abort();
  }, 10_000);
  try {
    const response = await fetch(url, {
      headers: { ...headers, accept: "text/event-stream" },
      signal: abort.signal,
    });
    if (!(response.headers.get("content-type") ?? "").includes("text/event-stream")) {
      return await jsonReply(response);
    }
    const reader = response.body?.getReader();
    assert.ok(reader, "an SSE body");
    let text = "";
    for (;;) {
      const { value, done } = (await reader.read()) as { value?: Uint8Array; done: boolean };
      if (done) return { status: response.status, code: null, message: `ended: ${text}` };
      text += Buffer.from(value ?? []).toString("utf8");
      for (const block of text.split("\n\n").slice(0, -1)) {
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
        const data = /^data: (.*)$/m.exec(block)?.[1] ?? "";
        if (event === "connected" || event === "ping" || block.startsWith(":")) continue;
        if (event === "serialized-error") {
          const error = JSON.parse(data) as { message?: string; data?: { code?: string } };
          return {
            status: response.status,
            code: error.data?.code ?? null,
            message: error.message ?? "",
          };
        }
        return { status: response.status, code: null, message: `${event}: ${data}` };
      }
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}
