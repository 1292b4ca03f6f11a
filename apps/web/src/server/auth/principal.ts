// Who is calling: a signed-in browser (session cookie) or a script (API
// token). Every front end — tRPC, the QMP gateway, the websockets, the pages —
// resolves the caller here and nowhere else.
import { db } from "../db";
import { env } from "../env";
import { CSRF_HEADER, SESSION_COOKIE, parseCookies } from "./cookies";
import { parseRole, weakerOf, type Role } from "./roles";
import { randomSecret, sameSecret, sha256 } from "./secrets";

export interface Principal {
  userId: string;
  username: string;
  role: Role;
  /** Set for API-token callers. */
  tokenId: string | null;
  tokenName: string | null;
  /** Set for browser sessions: the CSRF token their writes must carry. */
  sessionId: string | null;
  csrfToken: string | null;
}

export type AuthFailure = "unauthenticated" | "csrf";

/** What a request carries, whatever the server framework. */
export interface Credentials {
  method: string;
  authorization?: string | null;
  cookie?: string | null;
  csrfHeader?: string | null;
  origin?: string | null;
  host?: string | null;
  /** `?token=` on websocket upgrades (browsers cannot set headers there). */
  queryToken?: string | null;
}

export const TOKEN_PREFIX = "virga_";

export function displayName(principal: Principal): string {
  return principal.tokenName === null
    ? principal.username
    : `${principal.username} (token ${principal.tokenName})`;
}

export async function principalFromToken(token: string): Promise<Principal | null> {
  if (!token.startsWith(TOKEN_PREFIX)) return null;
  const row = await db().apiToken.findUnique({
    where: { tokenHash: sha256(token) },
    include: { user: true },
  });
  if (row === null || row.revokedAt !== null) return null;
  if (row.expiresAt !== null && row.expiresAt.getTime() < Date.now()) return null;
  // Last use, at most once a minute per token.
  if (row.lastUsedAt === null || Date.now() - row.lastUsedAt.getTime() > 60_000) {
    // Not waited for: a database locked by another process must neither hold up nor refuse the call.
    void db()
      .apiToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date() } })
      .catch(() => undefined);
  }
  return {
    userId: row.userId,
    username: row.user.username,
    role: weakerOf(parseRole(row.role), parseRole(row.user.role)),
    tokenId: row.id,
    tokenName: row.name,
    sessionId: null,
    csrfToken: null,
  };
}

export async function principalFromSession(secret: string): Promise<Principal | null> {
  const session = await db().session.findUnique({
    where: { tokenHash: sha256(secret) },
    include: { user: true },
  });
  if (session === null) return null;
  if (session.expiresAt.getTime() < Date.now()) {
    await db()
      .session.delete({ where: { id: session.id } })
      .catch(() => undefined);
    return null;
  }
  return {
    userId: session.userId,
    username: session.user.username,
    role: parseRole(session.user.role),
    tokenId: null,
    tokenName: null,
    sessionId: session.id,
    csrfToken: session.csrfToken,
  };
}

export async function createSession(userId: string, userAgent: string | null) {
  const secret = randomSecret();
  const csrfToken = randomSecret(24);
  const expiresAt = new Date(Date.now() + env().VIRGA_SESSION_HOURS * 3600_000);
  await db().session.create({
    data: { tokenHash: sha256(secret), csrfToken, userId, expiresAt, userAgent },
  });
  return { secret, csrfToken, expiresAt };
}

export async function endSession(sessionId: string): Promise<void> {
  await db().session.deleteMany({ where: { id: sessionId } });
}

/**
 * The same caller as it stands now, for connections that outlive a request
 * (the console websocket): null once its session ended or expired, its
 * token was revoked or expired, or its user was deleted; its role as the
 * user's role is now.
 */
export async function refreshPrincipal(principal: Principal): Promise<Principal | null> {
  if (principal.tokenId !== null) {
    const row = await db().apiToken.findUnique({
      where: { id: principal.tokenId },
      include: { user: true },
    });
    if (row === null || row.revokedAt !== null) return null;
    if (row.expiresAt !== null && row.expiresAt.getTime() < Date.now()) return null;
    return { ...principal, role: weakerOf(parseRole(row.role), parseRole(row.user.role)) };
  }
  if (principal.sessionId === null) return null;
  const session = await db().session.findUnique({
    where: { id: principal.sessionId },
    include: { user: true },
  });
  if (session === null || session.expiresAt.getTime() < Date.now()) return null;
  return { ...principal, role: parseRole(session.user.role) };
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function bearer(header: string | null | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1] ?? null;
}

/**
 * Resolves the caller. Browser sessions must, for anything but a safe
 * method, come from this origin and carry the session's CSRF token; token
 * callers are not browsers and need neither.
 */
export async function authenticate(
  credentials: Credentials,
): Promise<{ principal: Principal } | { failure: AuthFailure }> {
  const token = bearer(credentials.authorization) ?? credentials.queryToken ?? null;
  if (token !== null) {
    const principal = await principalFromToken(token);
    return principal === null ? { failure: "unauthenticated" } : { principal };
  }
  const secret = parseCookies(credentials.cookie).get(SESSION_COOKIE);
  if (secret === undefined || secret === "") return { failure: "unauthenticated" };
  const principal = await principalFromSession(secret);
  if (principal === null) return { failure: "unauthenticated" };
  if (!SAFE_METHODS.has(credentials.method.toUpperCase())) {
    if (!sameOrigin(credentials)) return { failure: "csrf" };
    const given = credentials.csrfHeader ?? "";
    if (principal.csrfToken === null || !sameSecret(given, principal.csrfToken)) {
      return { failure: "csrf" };
    }
  }
  return { principal };
}

/** An Origin header, when the browser sent one, must name this server. */
export function sameOrigin(credentials: Pick<Credentials, "origin" | "host">): boolean {
  if (!credentials.origin) return true;
  try {
    return new URL(credentials.origin).host === credentials.host;
  } catch {
    return false;
  }
}

export { CSRF_HEADER };
