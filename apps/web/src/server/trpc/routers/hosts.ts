// hosts.*: the machines running virgad. Adding one checks its URL (http or
// https; a redirect is refused), pins an https host's certificate (the admin
// confirms its fingerprint), asks virgad what the token may do
// (host.whoami), and stores the token sealed (credential.ts). Why a host is
// unreachable is shown to admins only.
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import type { Host } from "@virga/prisma";
import { db } from "../../db";
import { normaliseFingerprint, presentedCertificate } from "@virga/host/src/daemon/pinned-tls";
import type { Role } from "../../auth/roles";
import {
  openCredential,
  sealCredential,
  type HostCredential,
  type PinnedCertificate,
} from "../../hosts/credential";
import { probeHost } from "../../hosts/capacity";
import { hostHealth } from "../../hosts/health";
import { hostErrorFor } from "../../hosts/unreachable";
import { forgetHost, hostError, virgad } from "../../hosts/virgad";
import { reconcileHost } from "../../hosts/watcher";
import { findHost, onHost } from "../../vms/lookup";
import { adminProcedure, router, viewerProcedure } from "../trpc";

/** What a credential may show: its scope and pinned fingerprint, never the token. */
function credentialFacts(host: Host): { scope: string | null; fingerprint: string | null } {
  try {
    const credential = openCredential(host.token);
    return { scope: credential.scope, fingerprint: credential.pin?.fingerprint ?? null };
  } catch {
    return { scope: null, fingerprint: null };
  }
}

/** A host as `role` may see it: why it is unreachable only for admins. */
function publicHost(host: Host, role: Role) {
  return {
    id: host.id,
    name: host.name,
    url: host.url,
    ...credentialFacts(host),
    isLocal: host.isLocal,
    lastSeenAt: host.lastSeenAt,
    /** Since when this portal's watcher cannot reach it (null while it can). */
    unreachableSince: hostHealth().staleness(host.id)?.since ?? null,
    lastError: hostErrorFor(host.name, host.lastError, role),
    createdAt: host.createdAt,
  };
}

/** probeHost's answer, with why the host did not answer only for admins. */
async function probeFor(host: Host, role: Role) {
  const probe = await probeHost(host);
  return probe.error === null
    ? probe
    : { ...probe, error: hostErrorFor(host.name, probe.error, role) ?? probe.error };
}

const hostInput = z.object({
  name: z
    .string()
    .trim()
    .regex(/^[a-zA-Z0-9_.-]{1,64}$/, "1-64 letters, digits, '_', '.' or '-'"),
  url: z
    .string()
    .trim()
    .url("an http:// or https:// URL, e.g. http://127.0.0.1:7788")
    .refine((url) => /^https?:\/\//.test(url), "an http:// or https:// URL"),
  token: z.string().trim().min(1, "required (virgad --print-token, or --print-token=read)"),
  /** The https host's certificate fingerprint, as `virgad --print-fingerprint` shows it. */
  fingerprint: z.string().trim().optional(),
});

/** The certificate to pin for an https URL: the one presented, if it is the one the admin confirmed. */
async function certificateToPin(
  url: string,
  confirmed: string | undefined,
): Promise<PinnedCertificate | null> {
  if (!url.startsWith("https:")) {
    if (confirmed !== undefined && confirmed !== "") {
      throw new TRPCError({
        code: "BAD_REQUEST",
        message: "fingerprint: only an https:// host has a certificate to pin",
      });
    }
    return null;
  }
  let presented: PinnedCertificate;
  try {
    presented = await presentedCertificate(url);
  } catch (error) {
    throw new TRPCError({
      code: "BAD_REQUEST",
      message: `url: no TLS handshake with the host: ${error instanceof Error ? error.message : String(error)}`,
    });
  }
  if (confirmed === undefined || confirmed === "") {
    throw new TRPCError({
      code: "BAD_REQUEST",
      message: `fingerprint: the host presents a certificate with SHA-256 fingerprint ${presented.fingerprint}; check that it is the one virgad printed (virgad --print-fingerprint on the host) and enter it to pin it`,
    });
  }
  const wanted = normaliseFingerprint(confirmed);
  if (wanted === null) {
    throw new TRPCError({
      code: "BAD_REQUEST",
      message: "fingerprint: expected 64 hex digits (SHA-256), with or without ':'",
    });
  }
  if (wanted !== presented.fingerprint) {
    throw new TRPCError({
      code: "BAD_REQUEST",
      message: `fingerprint: the host presents SHA-256 ${presented.fingerprint}, not ${wanted}; not added (another machine, or a man in the middle?)`,
    });
  }
  return presented;
}

export const hostsRouter = router({
  /**
   * Every host with its live facts (CPUs, memory, KVM, VMs) and capacity
   * (memory its live VMs hold, what is free), or why it did not answer.
   */
  list: viewerProcedure.query(async ({ ctx }) => {
    const role = ctx.principal.role;
    const hosts = await db().host.findMany({ orderBy: { createdAt: "asc" } });
    return Promise.all(
      hosts.map(async (host) => ({ ...publicHost(host, role), ...(await probeFor(host, role)) })),
    );
  }),

  /** The host's PCI functions (address, ids, class, IOMMU group, driver): what VMs on it can pass through with VFIO. */
  pciDevices: viewerProcedure
    .input(z.object({ id: z.string().min(1) }))
    .query(async ({ input }) => onHost(await findHost(input.id), (c) => c.host.pciDevices.query())),
  get: viewerProcedure.input(z.object({ id: z.string().min(1) })).query(async ({ ctx, input }) => {
    const host = await findHost(input.id);
    const role = ctx.principal.role;
    return { ...publicHost(host, role), ...(await probeFor(host, role)) };
  }),

  add: adminProcedure.input(hostInput).mutation(async ({ ctx, input }) => {
    if ((await db().host.findUnique({ where: { name: input.name } })) !== null) {
      throw new TRPCError({ code: "CONFLICT", message: `name: a host '${input.name}' exists` });
    }
    const sameUrl = (await db().host.findMany()).find(
      (host) => host.url.replace(/\/+$/, "") === input.url.replace(/\/+$/, ""),
    );
    if (sameUrl !== undefined) {
      throw new TRPCError({
        code: "CONFLICT",
        message: `url: already registered as '${sameUrl.name}'`,
      });
    }
    const pin = await certificateToPin(input.url, input.fingerprint);
    const credential: HostCredential = { token: input.token, scope: null, pin };
    const probe = { id: `probe-${input.name}`, url: input.url, token: sealCredential(credential) };
    try {
      credential.scope = (await virgad(probe).host.whoami.query()).scope;
    } catch (error) {
      const refused = hostError(error, input.name).message;
      const field = /refused the portal's token/.test(refused) ? "token" : "url";
      throw new TRPCError({ code: "BAD_REQUEST", message: `${field}: ${refused}` });
    } finally {
      forgetHost(probe.id);
    }
    const host = await db().host.create({
      data: {
        name: input.name,
        url: input.url,
        token: sealCredential(credential),
        lastSeenAt: new Date(),
      },
    });
    ctx.audit.target = host.name;
    await reconcileHost(host);
    return publicHost(host, ctx.principal.role);
  }),

  remove: adminProcedure
    .input(z.object({ id: z.string().min(1) }))
    .mutation(async ({ ctx, input }) => {
      const host = await findHost(input.id);
      ctx.audit.target = host.name;
      await db().host.delete({ where: { id: host.id } });
      forgetHost(host.id);
      return { id: host.id };
    }),
});
