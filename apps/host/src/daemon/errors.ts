// virgad's typed errors. Everything below the tRPC layer throws DaemonError
// with the tRPC code it maps to, so handlers never invent codes and the
// message always names the VM, field or path concerned.
export type DaemonErrorCode =
  | "BAD_REQUEST"
  | "NOT_FOUND"
  | "CONFLICT"
  | "FORBIDDEN"
  | "PRECONDITION_FAILED"
  | "TIMEOUT"
  | "INTERNAL_SERVER_ERROR";

export class DaemonError extends Error {
  constructor(
    readonly code: DaemonErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DaemonError";
  }
}

export function badRequest(message: string): DaemonError {
  return new DaemonError("BAD_REQUEST", message);
}

export function notFound(id: string): DaemonError {
  return new DaemonError("NOT_FOUND", `no VM with id '${id}'`);
}

export function forbidden(message: string): DaemonError {
  return new DaemonError("FORBIDDEN", message);
}

export function wrongState(id: string, state: string, action: string, allowed: readonly string[]) {
  return new DaemonError(
    "PRECONDITION_FAILED",
    `cannot ${action} VM '${id}': it is ${state} (needs ${allowed.join(" or ")})`,
  );
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
