import type { Metadata } from "next";
import Link from "next/link";
import { notFound } from "next/navigation";
import { TRPCError } from "@trpc/server";
import { formatBytes } from "@/lib/bytes";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { CloneFleet } from "@/components/clone-fleet";
import { StateBadge } from "@/components/state-badge";
import { DeleteTemplate } from "@/components/template-actions";

export const metadata: Metadata = { title: "Template" };

export default async function TemplatePage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const principal = await requirePrincipal();
  const api = await serverApi();
  let found;
  try {
    found = await api.templates.get({ id });
  } catch (error) {
    if (error instanceof TRPCError && error.code === "NOT_FOUND") notFound();
    throw error;
  }
  const t = forClient<RouterOutputs["templates"]["get"]>(found);
  const canAct = principal.role !== "viewer";
  return (
    <>
      <div className="spread">
        <h1>
          Template <span className="mono">{t.name}</span>
        </h1>
        <Link href="/templates">All templates</Link>
      </div>
      <div className="grid2">
        <section className="panel" aria-label="Template">
          <h2>Snapshot</h2>
          <table>
            <tbody>
              <tr>
                <th>Source VM</th>
                <td>
                  {t.sourceVmId === null ? (
                    <span className="muted">{t.sourceVmName} (deleted)</span>
                  ) : (
                    <Link href={`/vms/${t.sourceVmId}`}>{t.sourceVmName}</Link>
                  )}
                </td>
              </tr>
              <tr>
                <th>Host</th>
                <td>{t.hostName}</td>
              </tr>
              <tr>
                <th>Machine</th>
                <td>
                  {t.vcpus} vCPU, {formatBytes(t.memoryBytes)}, {t.disks} disk
                  {t.disks === 1 ? "" : "s"}, {t.nics} NIC{t.nics === 1 ? "" : "s"}
                </td>
              </tr>
              <tr>
                <th>Size on disk</th>
                <td>{formatBytes(t.sizeBytes)}</td>
              </tr>
              <tr>
                <th>Created</th>
                <td>{new Date(t.createdAt).toLocaleString()}</td>
              </tr>
              <tr>
                <th>Clones made</th>
                <td data-testid="template-clones-made">{t.clonesMade}</td>
              </tr>
              <tr>
                <th>Directory</th>
                <td className="mono small">{t.path}</td>
              </tr>
            </tbody>
          </table>
          {canAct && (
            <div className="row" style={{ marginTop: 12 }}>
              <DeleteTemplate id={t.id} name={t.name} />
            </div>
          )}
        </section>
        {canAct && (
          <section className="panel" aria-label="Clone">
            <h2>Clone</h2>
            <CloneFleet templateId={t.id} templateName={t.name} />
          </section>
        )}
      </div>
      <section className="panel" aria-label="Clones">
        <h2>Clones</h2>
        <table data-testid="template-clones">
          <thead>
            <tr>
              <th>VM</th>
              <th>State</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {t.clones.map((vm) => (
              <tr key={vm.id}>
                <td>
                  <Link href={`/vms/${vm.id}`}>{vm.name}</Link>
                </td>
                <td>
                  <StateBadge state={vm.state} />
                </td>
                <td className="small">{new Date(vm.createdAt).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {t.clones.length === 0 && <p className="muted">No clones yet.</p>}
      </section>
    </>
  );
}
