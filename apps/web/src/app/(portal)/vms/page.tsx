import type { Metadata } from "next";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { VmTable } from "@/components/vm-table";

export const metadata: Metadata = { title: "Virtual machines" };

export default async function VmsPage() {
  const principal = await requirePrincipal();
  const api = await serverApi();
  const [vms, definitions, hosts] = await Promise.all([
    api.vms.list(),
    api.definitions.list(),
    api.hosts.list(),
  ]);
  return (
    <>
      <h1>Virtual machines</h1>
      <VmTable
        initialVms={forClient<RouterOutputs["vms"]["list"]>(vms)}
        definitions={definitions.map((d) => ({ id: d.id, name: d.name }))}
        hosts={hosts.map((h) => ({ id: h.id, name: h.name, up: h.info !== null }))}
        canAct={principal.role !== "viewer"}
      />
    </>
  );
}
