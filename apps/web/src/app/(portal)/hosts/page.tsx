import type { Metadata } from "next";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { HostList } from "@/components/host-list";

export const metadata: Metadata = { title: "Hosts" };

export default async function HostsPage() {
  const principal = await requirePrincipal();
  const api = await serverApi();
  const hosts = forClient<RouterOutputs["hosts"]["list"]>(await api.hosts.list());
  return (
    <>
      <h1>Hosts</h1>
      <HostList initial={hosts} isAdmin={principal.role === "admin"} />
    </>
  );
}
