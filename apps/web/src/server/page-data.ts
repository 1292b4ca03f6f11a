// What server components use to read data: the signed-in user from the
// session cookie, and the portal's own tRPC router called in-process (same
// role checks as over HTTP). Never imported by client code.
import "server-only";
import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { SESSION_COOKIE } from "./auth/cookies";
import { principalFromSession, type Principal } from "./auth/principal";
import { createCaller } from "./trpc/root";

export async function currentPrincipal(): Promise<Principal | null> {
  const secret = (await cookies()).get(SESSION_COOKIE)?.value;
  return secret ? principalFromSession(secret) : null;
}

export async function requirePrincipal(): Promise<Principal> {
  const principal = await currentPrincipal();
  if (principal === null) redirect("/sign-in");
  return principal;
}

export async function serverApi() {
  const principal = await requirePrincipal();
  return createCaller({
    principal,
    ip: null,
    userAgent: null,
    sameOrigin: true,
    setCookies: () => undefined,
    audit: {},
  });
}

/**
 * Data as the browser's tRPC client sees it (dates as ISO strings): T is the
 * client-side type (RouterOutputs), which the JSON round trip produces.
 */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
export function forClient<T>(value: unknown): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
