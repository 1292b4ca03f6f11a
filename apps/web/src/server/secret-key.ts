// The portal's secret key: what seals the hosts' credentials in the database
// (hosts/credential.ts). It never lives in the database, so a copy of
// portal.db alone (a backup, a stolen file) does not give the hosts away.
// VIRGA_SECRET_KEY (32 bytes: 64 hex digits or base64) wins; otherwise the
// file VIRGA_SECRET_KEY_FILE (`npm start` sets <data>/secret.key; else
// data/secret.key of the repository), created 0600 with 32 random bytes on
// first use.
import { randomBytes } from "node:crypto";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repositoryRoot } from "@virga/prisma";
import { env } from "./env";

const KEY_BYTES = 32;
const store = globalThis as typeof globalThis & { __virgaSecretKey?: Buffer };

export class SecretKeyError extends Error {}

function decode(text: string, where: string): Buffer {
  const value = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(value)
    ? Buffer.from(value, "hex")
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(value)
      ? Buffer.from(value, "base64")
      : null;
  if (key?.length !== KEY_BYTES) {
    throw new SecretKeyError(`${where}: expected 32 bytes as 64 hex digits or base64`);
  }
  return key;
}

/** Where the key file is when VIRGA_SECRET_KEY is not set. */
export function secretKeyFile(): string {
  return env().VIRGA_SECRET_KEY_FILE?.trim() || join(repositoryRoot(), "data", "secret.key");
}

function fromFile(file: string): Buffer {
  try {
    // wx: two processes starting at once cannot both write a key; the loser reads the winner's.
    writeFileSync(file, randomBytes(KEY_BYTES).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new SecretKeyError(`cannot create the secret key ${file}: ${(error as Error).message}`);
    }
  }
  // Whatever the umask or a copy made it, only the portal's user may read the key.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return decode(readFileSync(file, "utf8"), file);
}

export function secretKey(): Buffer {
  if (store.__virgaSecretKey === undefined) {
    const given = env().VIRGA_SECRET_KEY;
    store.__virgaSecretKey =
      given !== undefined && given.trim() !== ""
        ? decode(given, "VIRGA_SECRET_KEY")
        : fromFile(secretKeyFile());
  }
  return store.__virgaSecretKey;
}
