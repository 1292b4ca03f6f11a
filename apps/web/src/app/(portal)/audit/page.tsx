import type { Metadata } from "next";
import { forClient, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { AuditTable } from "@/components/audit-table";

export const metadata: Metadata = { title: "Audit log" };

export default async function AuditPage() {
  const api = await serverApi();
  const entries = forClient<RouterOutputs["audit"]["list"]>(await api.audit.list({ limit: 200 }));
  return (
    <>
      <h1>Audit log</h1>
      <AuditTable initial={entries} />
    </>
  );
}
