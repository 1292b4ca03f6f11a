import type { Metadata } from "next";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { MigrationsTable } from "@/components/migrations-table";

export const metadata: Metadata = { title: "Migrations" };

export default async function MigrationsPage() {
  await requirePrincipal();
  const api = await serverApi();
  const migrations = forClient<RouterOutputs["migrations"]["list"]>(await api.migrations.list());
  return (
    <>
      <h1>Migrations</h1>
      <p className="muted">
        Every live migration of a VM between hosts, newest first. Start one from a running VM&apos;s
        page.
      </p>
      <div className="panel">
        <MigrationsTable initial={migrations} />
      </div>
    </>
  );
}
