// The audit log: who did what, when, through which front end, and how it
// ended. Inputs are stored with secrets blanked and typed text summarised.
import { db } from "./db";
import { displayName, type Principal } from "./auth/principal";

export type Via = "ui" | "api" | "gateway" | "console" | "system";

export interface AuditEntry {
  principal: Principal | null;
  /** Overrides the actor name (a failed sign-in has no principal). */
  actor?: string;
  action: string;
  target?: string | null;
  input?: unknown;
  via: Via;
  ip?: string | null;
  ok: boolean;
  error?: string | null;
}

const SECRET_KEYS = new Set(["password", "newPassword", "currentPassword", "token", "secret"]);
const MAX_INPUT_CHARS = 4000;

function scrub(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = SECRET_KEYS.has(key) ? "***" : scrub(item, depth + 1);
  }
  return out;
}

/**
 * Inputs that can carry anything the user typed — console keystrokes (a
 * password typed at a login prompt) and raw QMP arguments (a secret
 * object, a URI with credentials) — are kept as their shape only: the
 * command and the size, never the text.
 */
function summarise(action: string, input: unknown): unknown {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return input;
  const fields = input as Record<string, unknown>;
  if (action === "vms.consoleInput" && typeof fields.data === "string") {
    return { ...fields, data: `(${fields.data.length} characters)` };
  }
  if ((action === "vms.qmp" || action === "gateway.qmp") && fields.arguments !== undefined) {
    const text = JSON.stringify(fields.arguments);
    const keys =
      typeof fields.arguments === "object" && fields.arguments !== null
        ? Object.keys(fields.arguments).join(", ")
        : typeof fields.arguments;
    return { ...fields, arguments: `(${text.length} characters: ${keys})` };
  }
  return input;
}

export function viaOf(principal: Principal | null): Via {
  return principal?.tokenId ? "api" : "ui";
}

export async function audit(entry: AuditEntry): Promise<void> {
  let input: string | null = null;
  if (entry.input !== undefined) {
    input = JSON.stringify(scrub(summarise(entry.action, entry.input)));
    if (input.length > MAX_INPUT_CHARS) {
      input = `${input.slice(0, MAX_INPUT_CHARS)}…`;
    }
  }
  try {
    await db().auditLog.create({
      data: {
        userId: entry.principal?.userId ?? null,
        tokenId: entry.principal?.tokenId ?? null,
        actor: entry.actor ?? (entry.principal ? displayName(entry.principal) : "anonymous"),
        action: entry.action,
        target: entry.target ?? null,
        input,
        result: entry.ok ? "ok" : "error",
        error: entry.error ?? null,
        via: entry.via,
        ip: entry.ip ?? null,
      },
    });
  } catch (error) {
    console.error(`audit: could not record ${entry.action}: ${String(error)}`);
  }
}
