import type { Metadata } from "next";
import Link from "next/link";
import { formatBytes } from "@/lib/bytes";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { DeleteTemplate } from "@/components/template-actions";

export const metadata: Metadata = { title: "Templates" };

export default async function TemplatesPage() {
  const principal = await requirePrincipal();
  const api = await serverApi();
  const templates = forClient<RouterOutputs["templates"]["list"]>(await api.templates.list());
  const canAct = principal.role !== "viewer";
  return (
    <>
      <h1>Templates</h1>
      <p className="muted">
        Memory snapshots of VMs. A clone carries on from the instant its template was taken, without
        booting; save one from a running VM&apos;s page.
      </p>
      <div className="panel">
        <table data-testid="templates-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Source VM</th>
              <th>Host</th>
              <th>Machine</th>
              <th>Size on disk</th>
              <th>Created</th>
              <th>Clones made</th>
              {canAct && <th>Actions</th>}
            </tr>
          </thead>
          <tbody>
            {templates.map((t) => (
              <tr key={t.id} data-testid={`template-${t.name}`}>
                <td>
                  <Link href={`/templates/${t.id}`}>{t.name}</Link>
                </td>
                <td>
                  {t.sourceVmId === null ? (
                    <span className="muted">{t.sourceVmName} (deleted)</span>
                  ) : (
                    <Link href={`/vms/${t.sourceVmId}`}>{t.sourceVmName}</Link>
                  )}
                </td>
                <td>{t.hostName}</td>
                <td className="small">
                  {t.vcpus} vCPU, {formatBytes(t.memoryBytes)}
                </td>
                <td data-testid={`template-${t.name}-size`}>{formatBytes(t.sizeBytes)}</td>
                <td className="small">{new Date(t.createdAt).toLocaleString()}</td>
                <td data-testid={`template-${t.name}-clones`}>{t.clonesMade}</td>
                {canAct && (
                  <td>
                    <div className="row">
                      <Link className="button" href={`/templates/${t.id}`}>
                        Clone…
                      </Link>
                      <DeleteTemplate id={t.id} name={t.name} />
                    </div>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {templates.length === 0 && <p className="muted">No templates yet.</p>}
      </div>
    </>
  );
}
