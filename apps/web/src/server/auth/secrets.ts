// Passwords and secrets. Passwords: scrypt (node:crypto) with a random salt,
// stored as scrypt$N$r$p$salt$hash. Session cookies and API tokens are 32
// random bytes, so a plain SHA-256 of them is enough to store.
import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";

// OWASP's password storage guidance lists scrypt N=2^17, r=8, p=1 and
// equally costly trades of memory for parallelism; N=2^14, r=8, p=5 is one
// of them, at 16 MiB per hash rather than 128, so a burst of sign-ins
// cannot exhaust the portal's memory.
const N = 16384;
const R = 8;
const P = 5;
const KEY_LENGTH = 64;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LENGTH, { N: n, r, p, maxmem: 64 * 1024 * 1024 }, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return ["scrypt", N, R, P, salt.toString("base64"), key.toString("base64")].join("$");
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, hash] = stored.split("$");
  if (kind !== "scrypt" || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64");
  const key = await derive(password, Buffer.from(salt, "base64"), Number(n), Number(r), Number(p));
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** A stored hash made at another cost than today's: hash again at the next sign-in. */
export function needsRehash(stored: string): boolean {
  const [kind, n, r, p] = stored.split("$");
  return kind !== "scrypt" || Number(n) !== N || Number(r) !== R || Number(p) !== P;
}

/** What verifying an unknown user's password costs, so timing tells nothing. */
export const DUMMY_HASH = `scrypt$${N}$${R}$${P}$AAAAAAAAAAAAAAAAAAAAAA==$AAAA`;

/** A random secret, URL-safe. */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}

export function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** Constant-time string comparison. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
