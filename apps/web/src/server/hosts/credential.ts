// A host's credential as the Host row's `token` column keeps it: virgad's
// bearer token, the scope virgad said it has, and for an https host the
// certificate pinned when it was added, sealed together with AES-256-GCM
// under the portal's secret key (secret-key.ts). The column holds
// `v1:<base64url(iv | tag | ciphertext)>`; the prefix leaves room for a
// new format, and a row written before sealing existed (the bare token) is
// still read, and resealed when the portal starts (bootstrap.ts).
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { PinnedCertificate } from "@virga/host/src/daemon/pinned-tls";
import { secretKey } from "../secret-key";

export type HostScope = "read" | "full";

export type { PinnedCertificate };

export interface HostCredential {
  token: string;
  /** null for a row from before scopes: virgad has not been asked. */
  scope: HostScope | null;
  pin: PinnedCertificate | null;
}

const PREFIX = "v1:";
const IV_BYTES = 12;
const TAG_BYTES = 16;
// Binds a sealed value to its use: a value sealed for something else with the same key does not open here.
const AAD = Buffer.from("virga host credential v1");

export class CredentialError extends Error {}

export function isSealed(stored: string): boolean {
  return stored.startsWith(PREFIX);
}

export function sealCredential(credential: HostCredential): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", secretKey(), iv).setAAD(AAD);
  const body = Buffer.concat([cipher.update(JSON.stringify(credential), "utf8"), cipher.final()]);
  return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url");
}

export function openCredential(stored: string): HostCredential {
  if (!isSealed(stored)) return { token: stored, scope: null, pin: null };
  const raw = Buffer.from(stored.slice(PREFIX.length), "base64url");
  try {
    const decipher = createDecipheriv("aes-256-gcm", secretKey(), raw.subarray(0, IV_BYTES))
      .setAAD(AAD)
      .setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    const text = Buffer.concat([
      decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)),
      decipher.final(),
    ]).toString("utf8");
    return JSON.parse(text) as HostCredential;
  } catch {
    throw new CredentialError(
      "the host's stored token does not open with this portal's secret key (VIRGA_SECRET_KEY or secret.key changed?); remove and add the host again",
    );
  }
}
