// hosts.*: the machines running virgad. Adding one checks its URL and token
// by asking it for host.info.
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import type { Host } from "@virga/prisma";
import { db } from "../../db";
import { probeHost } from "../../hosts/capacity";
import { forgetHost, hostError, virgad } from "../../hosts/virgad";
import { reconcileHost } from "../../hosts/watcher";
import { findHost } from "../../vms/lookup";
import { adminProcedure, router, viewerProcedure } from "../trpc";

function publicHost(host: Host) {
  return {
    id: host.id,
    name: host.name,
    url: host.url,
    isLocal: host.isLocal,
    lastSeenAt: host.lastSeenAt,
    lastError: host.lastError,
    createdAt: host.createdAt,
  };
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
  token: z.string().trim().min(1, "required (virgad --print-token)"),
});

export const hostsRouter = router({
  /**
   * Every host with its live facts (CPUs, memory, KVM, VMs) and capacity
   * (memory its live VMs hold, what is free), or why it did not answer.
   */
  list: viewerProcedure.query(async () => {
    const hosts = await db().host.findMany({ orderBy: { createdAt: "asc" } });
    return Promise.all(
      hosts.map(async (host) => ({ ...publicHost(host), ...(await probeHost(host)) })),
    );
  }),

  get: viewerProcedure.input(z.object({ id: z.string().min(1) })).query(async ({ input }) => {
    const host = await findHost(input.id);
    return { ...publicHost(host), ...(await probeHost(host)) };
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
    const probe = { id: `probe-${input.name}`, url: input.url, token: input.token };
    try {
      await virgad(probe).host.info.query();
    } catch (error) {
      const reason = hostError(error, input.name).message;
      throw new TRPCError({ code: "BAD_REQUEST", message: `url: ${reason}` });
    } finally {
      forgetHost(probe.id);
    }
    const host = await db().host.create({
      data: { name: input.name, url: input.url, token: input.token, lastSeenAt: new Date() },
    });
    ctx.audit.target = host.name;
    await reconcileHost(host);
    return publicHost(host);
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
