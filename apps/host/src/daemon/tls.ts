// TLS for a virgad that listens beyond loopback. On first start it makes a
// self-signed certificate (EC P-256, ten years) with Debian's `openssl`
// binary and keeps it in <run>/tls, so its SHA-256 fingerprint stays the same
// across restarts: the portal pins that fingerprint when the host is added,
// which is what makes a self-signed certificate trustworthy here.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { privateDir } from "./run-dir";

export interface TlsMaterial {
  cert: string;
  key: string;
  /** SHA-256 of the DER certificate, upper-case hex pairs joined by ':' (as openssl and browsers show it). */
  fingerprint: string;
}

/** Whether a bind address is loopback only (127.0.0.0/8, ::1, localhost); anything else needs TLS. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  const lower = host.toLowerCase();
  return lower === "::1" || lower.startsWith("::ffff:127.");
}

export class TlsError extends Error {}

function generate(certFile: string, keyFile: string, host: string): void {
  const names = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"];
  if (isIP(host) !== 0 && host !== "0.0.0.0" && host !== "::") names.push(`IP:${host}`);
  else if (isIP(host) === 0 && host !== "localhost") names.push(`DNS:${host}`);
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=virgad",
        "-addext",
        `subjectAltName=${names.join(",")}`,
        "-keyout",
        keyFile,
        "-out",
        certFile,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT"
        ? "the openssl command is missing (Debian package openssl; npm install's setup-host installs it)"
        : String((error as { stderr?: Buffer }).stderr ?? error).trim();
    throw new TlsError(
      `TLS: cannot generate a certificate in ${path.dirname(certFile)}: ${reason}`,
    );
  }
}

/** The certificate and key in `dir`, generated on first use. */
export function tlsMaterial(dir: string, host: string): TlsMaterial {
  privateDir(dir);
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  // The directory is 0700 and openssl writes keys 0600; the chmod covers a key copied in by hand.
  if (!existsSync(certFile) || !existsSync(keyFile)) generate(certFile, keyFile, host);
  chmodSync(keyFile, 0o600);
  const cert = readFileSync(certFile, "utf8");
  return {
    cert,
    key: readFileSync(keyFile, "utf8"),
    fingerprint: new X509Certificate(cert).fingerprint256,
  };
}
