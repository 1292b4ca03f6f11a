// The HTTP-to-QMP gateway: POST /api/v1/vms/{id}/qmp with
// {"execute": ..., "arguments": ...} answers with exactly what the VM's QMP
// answered ({"return": ...} or {"error": {...}}, HTTP 200 either way — a QMP
// error is an answer). Portal failures use HTTP status codes and
// {"error": {"code", "message"}} with the field named. Same auth (token or
// session + CSRF), command allow-list with its roles, and audit as the UI.
import type { IncomingMessage, ServerResponse } from "node:http";
import { getHTTPStatusCodeFromError } from "@trpc/server/http";
import { TRPCError } from "@trpc/server";
import { audit } from "../audit";
import type { Principal } from "../auth/principal";
import { describeZodIssues } from "../trpc/trpc";
import { qmpCommandInput } from "../trpc/routers/vms";
import { messageFor } from "../hosts/unreachable";
import { authorizeQmp, relayQmp } from "../vms/actions";
import { BodyError, clientIp, readJsonBody, sendJson } from "./request";

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}

export async function handleGateway(
  req: IncomingMessage,
  res: ServerResponse,
  vmId: string,
  principal: Principal,
): Promise<void> {
  if (req.method !== "POST") {
    res.setHeader("allow", "POST");
    fail(res, 405, "METHOD_NOT_SUPPORTED", 'use POST with {"execute": ..., "arguments": ...}');
    return;
  }
  let body: unknown;
  try {
    body = await readJsonBody(req);
  } catch (error) {
    const status = error instanceof BodyError ? error.status : 400;
    fail(res, status, "BAD_REQUEST", error instanceof Error ? error.message : String(error));
    return;
  }
  const parsed = qmpCommandInput.strict().safeParse(body);
  const entry = {
    principal,
    action: "gateway.qmp",
    target: vmId,
    input: body,
    via: "gateway" as const,
    ip: clientIp(req),
  };
  if (!parsed.success) {
    const message = describeZodIssues(parsed.error);
    await audit({ ...entry, ok: false, error: message });
    fail(res, 400, "BAD_REQUEST", message);
    return;
  }
  const { execute, arguments: args } = parsed.data;
  try {
    authorizeQmp(principal.role, execute);
    const reply = await relayQmp(vmId, execute, args);
    const qmpError = (reply as { error?: { desc?: string } }).error;
    await audit({ ...entry, ok: qmpError === undefined, error: qmpError?.desc ?? null });
    sendJson(res, 200, reply);
  } catch (error) {
    const trpcError =
      error instanceof TRPCError
        ? error
        : new TRPCError({ code: "INTERNAL_SERVER_ERROR", message: String(error) });
    await audit({ ...entry, ok: false, error: trpcError.message });
    fail(
      res,
      getHTTPStatusCodeFromError(trpcError),
      trpcError.code,
      messageFor(trpcError, principal.role),
    );
  }
}
