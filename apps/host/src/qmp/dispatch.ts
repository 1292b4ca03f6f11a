// From a parsed QMP request to a reply: request shape, command lookup,
// argument validation with QMP-style messages, the handler. Transport-free:
// the socket server and any later front end call execute().
import { z } from "zod";
import type { CommandContext, QmpCommand } from "./command";
import { QmpError, genericError, NO_ID, type RequestId } from "./wire";

export type CommandTable = ReadonlyMap<string, QmpCommand>;

export function makeTable(commands: readonly QmpCommand[]): CommandTable {
  return new Map(commands.map((c) => [c.name, c]));
}

export interface ParsedRequest {
  name: string;
  args: Record<string, unknown>;
  id: RequestId;
}

const REQUEST_KEYS = new Set(["execute", "arguments", "id", "exec-oob", "control"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks the envelope of a request. Errors carry the id when it could be read. */
export function parseRequest(value: unknown): ParsedRequest | { error: QmpError; id: RequestId } {
  if (!isObject(value))
    return { error: genericError("QMP input must be a JSON object"), id: NO_ID };
  const id: RequestId = "id" in value ? { present: true, value: value.id } : NO_ID;
  for (const key of Object.keys(value)) {
    if (!REQUEST_KEYS.has(key) || key === "control") {
      return { error: genericError(`QMP input member '${key}' is unexpected`), id };
    }
  }
  if ("exec-oob" in value) {
    return { error: genericError("out-of-band execution (exec-oob) is not supported"), id };
  }
  const name = value.execute;
  if (typeof name !== "string") {
    return { error: genericError("QMP input member 'execute' must be a string"), id };
  }
  const args = value.arguments ?? {};
  if (!isObject(args)) {
    return { error: genericError("QMP input member 'arguments' must be an object"), id };
  }
  return { name, args, id };
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** Turns a zod failure into QMP's wording, naming the argument. */
export function argumentError(error: z.ZodError, args: Record<string, unknown>): QmpError {
  const issue = error.issues[0];
  if (issue === undefined) return genericError("Invalid arguments");
  if (issue.code === "unrecognized_keys") {
    return genericError(`Parameter '${issue.keys[0] ?? "?"}' is unexpected`);
  }
  const name = issue.path.join(".");
  if (issue.code === "invalid_type") {
    if (issue.received === "undefined") return genericError(`Parameter '${name}' is missing`);
    const got = describeType(
      issue.path.reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], args),
    );
    return genericError(
      `Invalid parameter type for '${name}', expected: ${issue.expected}, got ${got}`,
    );
  }
  return genericError(`Parameter '${name}': ${issue.message}`);
}

/** Validates the arguments and runs the command; returns its value or throws QmpError. */
export async function execute(
  table: CommandTable,
  request: ParsedRequest,
  ctx: CommandContext,
): Promise<unknown> {
  const command = table.get(request.name);
  if (command === undefined) {
    throw new QmpError("CommandNotFound", `The command ${request.name} has not been found`);
  }
  const parsed = command.args.safeParse(request.args);
  if (!parsed.success) throw argumentError(parsed.error, request.args);
  try {
    return await command.handler(parsed.data, ctx);
  } catch (error) {
    if (error instanceof QmpError) throw error;
    throw genericError(error instanceof Error ? error.message : String(error));
  }
}
