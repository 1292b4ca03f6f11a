// The two cookies of a browser session: the HttpOnly session secret, and the
// CSRF token that page scripts read and echo in the x-csrf-token header
// (a synchronizer token kept on the session row: another site can make the
// browser send the cookie, but cannot read this value).
import { env } from "../env";

export const SESSION_COOKIE = "virga_session";
export const CSRF_COOKIE = "virga_csrf";
export const CSRF_HEADER = "x-csrf-token";

export function parseCookies(header: string | undefined | null): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    try {
      cookies.set(name, decodeURIComponent(part.slice(eq + 1).trim()));
    } catch {
      // a cookie that is not ours and not URI-encoded
    }
  }
  return cookies;
}

function cookie(name: string, value: string, maxAgeSeconds: number, httpOnly: boolean): string {
  const parts = [
    `${name}=${encodeURIComponent(value)}`,
    "Path=/",
    `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`,
    "SameSite=Lax",
  ];
  if (httpOnly) parts.push("HttpOnly");
  if (env().VIRGA_SECURE_COOKIES === "1") parts.push("Secure");
  return parts.join("; ");
}

export function sessionCookies(secret: string, csrf: string, expiresAt: Date): string[] {
  const maxAge = (expiresAt.getTime() - Date.now()) / 1000;
  return [cookie(SESSION_COOKIE, secret, maxAge, true), cookie(CSRF_COOKIE, csrf, maxAge, false)];
}

export function clearedCookies(): string[] {
  return [cookie(SESSION_COOKIE, "", 0, true), cookie(CSRF_COOKIE, "", 0, false)];
}
