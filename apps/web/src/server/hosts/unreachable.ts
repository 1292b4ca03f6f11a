// A host the portal cannot reach. Why (a refused connection, an address, a
// TLS or DNS failure, a redirect) describes the network between the portal
// and its hosts, which is for admins: everyone else is told only that the
// host is unreachable.
import { TRPCError } from "@trpc/server";
import { hasRole, type Role } from "../auth/roles";

function isAdmin(role: Role | null | undefined): boolean {
  return role != null && hasRole(role, "admin");
}

function summary(hostName: string): string {
  return `host '${hostName}' is unreachable (an admin sees why on the Hosts page)`;
}

export class HostUnreachableError extends TRPCError {
  readonly hostName: string;

  constructor(hostName: string, message: string) {
    super({ code: "BAD_GATEWAY", message });
    this.hostName = hostName;
  }
}

/** The error's message as `role` may read it. */
export function messageFor(error: TRPCError, role: Role | null | undefined): string {
  return error instanceof HostUnreachableError && !isAdmin(role)
    ? summary(error.hostName)
    : error.message;
}

/** A host's connection error (live or the watcher's last) as `role` may read it. */
export function hostErrorFor(
  hostName: string,
  error: string | null,
  role: Role | null | undefined,
): string | null {
  return error === null || isAdmin(role) ? error : summary(hostName);
}
