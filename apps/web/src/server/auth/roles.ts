// Roles, weakest first: a viewer reads, an operator also acts on VMs,
// definitions and hosts' VMs, an admin also manages hosts, users and tokens.
import { z } from "zod";

export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];
export const roleSchema = z.enum(ROLES);

export function hasRole(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export function weakerOf(a: Role, b: Role): Role {
  return ROLES.indexOf(a) <= ROLES.indexOf(b) ? a : b;
}

export function parseRole(value: string): Role {
  return roleSchema.catch("viewer").parse(value);
}
