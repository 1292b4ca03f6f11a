// TLS to a virgad with a self-signed certificate (tls.ts), trusted by
// pinning: the certificate taken when the host was added to the portal is
// the only trust anchor, and a connection is accepted only if the server's
// SHA-256 fingerprint is the pinned one (hostnames do not matter: the pin is
// the identity). Node's fetch cannot take these options without the undici
// package, so requests go through node:https with a small fetch-shaped
// wrapper tRPC's httpLink accepts. Used by the portal for every host and by
// virgad for a migration's destination (peer.ts).
import https from "node:https";
import tls from "node:tls";

export interface PinnedCertificate {
  /** SHA-256 of the certificate, as virgad prints it (AB:CD:…). */
  fingerprint: string;
  /** The certificate itself (PEM): the one trust anchor for this host. */
  cert: string;
}

const HANDSHAKE_TIMEOUT_MS = 5000;

/** "ab:cd…", "ABCD…" or with spaces → "AB:CD:…", the form Node and virgad print. */
export function normaliseFingerprint(text: string): string | null {
  const hex = text.replace(/[\s:]/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return null;
  return hex.match(/../g)?.join(":") ?? null;
}

function mismatch(presented: string, pin: PinnedCertificate): Error {
  return new Error(
    `the host's certificate (SHA-256 ${presented}) is not the pinned one (${pin.fingerprint}); remove the host and add it again if it was replaced on purpose`,
  );
}

/** TLS options that accept exactly the pinned certificate. */
export function pinnedTlsOptions(pin: PinnedCertificate): tls.ConnectionOptions {
  return {
    ca: pin.cert,
    checkServerIdentity: (_host, peer) =>
      peer.fingerprint256 === pin.fingerprint ? undefined : mismatch(peer.fingerprint256, pin),
  };
}

/**
 * A certificate other than the pinned one mostly fails OpenSSL's chain check
 * ("self-signed certificate") before checkServerIdentity sees it; this says
 * what happened instead, with the fingerprint now presented.
 */
async function explainRefusal(
  error: unknown,
  url: string,
  pin: PinnedCertificate,
): Promise<unknown> {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  if (!/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) return error;
  try {
    return mismatch((await presentedCertificate(url)).fingerprint, pin);
  } catch {
    return error;
  }
}

/**
 * An agent for one host and pin. Its connections may resume TLS sessions,
 * which skip checkServerIdentity: safe only because every session in this
 * agent's cache was made with this same pin.
 */
export function pinnedAgent(pin: PinnedCertificate): https.Agent {
  return new https.Agent({ ...pinnedTlsOptions(pin), keepAlive: true });
}

/** A fetch for tRPC's httpLink over a pinned agent (method, headers, string body, signal). */
export function agentFetch(agent: https.Agent, pin: PinnedCertificate): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = input instanceof Request ? input.url : String(input);
      const request = https.request(
        url,
        {
          agent,
          method: init?.method ?? "GET",
          headers: init?.headers as Record<string, string> | undefined,
          signal: init?.signal ?? undefined,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", reject);
          response.on("end", () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              if (typeof value === "string") headers.set(name, value);
            }
            resolve(
              new Response(Buffer.concat(chunks), { status: response.statusCode ?? 0, headers }),
            );
          });
        },
      );
      request.on("error", (error) => {
        void explainRefusal(error, url, pin).then(reject);
      });
      request.end(typeof init?.body === "string" ? init.body : undefined);
    });
}

/**
 * The certificate a https URL presents, read from the handshake alone: the
 * connection is closed before a byte of HTTP (or a token) is sent.
 */
export function presentedCertificate(url: string): Promise<PinnedCertificate> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: target.hostname.replace(/^\[|\]$/g, ""),
      port: Number(target.port || 443),
      servername: /^[\d.]+$|:/.test(target.hostname) ? undefined : target.hostname,
      // Not trusted here: the admin confirms the fingerprint before it is pinned.
      rejectUnauthorized: false,
      timeout: HANDSHAKE_TIMEOUT_MS,
    });
    socket.once("secureConnect", () => {
      const peer = socket.getPeerCertificate();
      socket.destroy();
      if (!Buffer.isBuffer(peer.raw)) {
        reject(new Error("the host presented no certificate"));
        return;
      }
      const base64 =
        peer.raw
          .toString("base64")
          .match(/.{1,64}/g)
          ?.join("\n") ?? "";
      resolve({
        fingerprint: peer.fingerprint256,
        cert: `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`,
      });
    });
    socket.once("timeout", () => {
      socket.destroy();
      reject(new Error(`no TLS handshake within ${HANDSHAKE_TIMEOUT_MS / 1000} s`));
    });
    socket.once("error", reject);
  });
}
