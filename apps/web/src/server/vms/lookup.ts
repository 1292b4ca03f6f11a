// Finding a VM and the host that runs it, and calling that host's virgad
// with its errors turned into the portal's.
import { TRPCError } from "@trpc/server";
import type { Host, Vm } from "@virga/prisma";
import { db } from "../db";
import { hostError, virgad, type VirgadClient } from "../hosts/virgad";

export async function findVm(id: string): Promise<Vm & { host: Host }> {
  const vm = await db().vm.findUnique({ where: { id }, include: { host: true } });
  if (vm === null) throw new TRPCError({ code: "NOT_FOUND", message: `no VM with id '${id}'` });
  return vm;
}

export async function findHost(id: string): Promise<Host> {
  const host = await db().host.findUnique({ where: { id } });
  if (host === null) throw new TRPCError({ code: "NOT_FOUND", message: `no host with id '${id}'` });
  return host;
}

export async function onHost<T>(
  host: Host,
  call: (client: VirgadClient) => Promise<T>,
): Promise<T> {
  try {
    return await call(virgad(host));
  } catch (error) {
    throw hostError(error, host.name);
  }
}
