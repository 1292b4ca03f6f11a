import type { Metadata } from "next";
import { redirect } from "next/navigation";
import { hasRole } from "@/server/auth/roles";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { AuditTable } from "@/components/audit-table";

export const metadata: Metadata = { title: "Audit log" };

export default async function AuditPage() {
  // As the Users page: a viewer who follows a link here gets the VMs, not an error.
  if (!hasRole((await requirePrincipal()).role, "operator")) redirect("/vms");
  const api = await serverApi();
  const entries = forClient<RouterOutputs["audit"]["list"]>(await api.audit.list({ limit: 200 }));
  return (
    <>
      <h1>Audit log</h1>
      <AuditTable initial={entries} />
    </>
  );
}
