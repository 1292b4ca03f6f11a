import type { Metadata } from "next";
import { notFound } from "next/navigation";
import { TRPCError } from "@trpc/server";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { VmDetail } from "@/components/vm-detail";

export const metadata: Metadata = { title: "VM" };

export default async function VmPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const principal = await requirePrincipal();
  const api = await serverApi();
  let vm;
  try {
    vm = await api.vms.get({ id });
  } catch (error) {
    if (error instanceof TRPCError && error.code === "NOT_FOUND") notFound();
    throw error;
  }
  return (
    <VmDetail
      initial={forClient<RouterOutputs["vms"]["get"]>(vm)}
      canAct={principal.role !== "viewer"}
    />
  );
}
