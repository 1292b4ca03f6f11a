import type { Metadata } from "next";
import Link from "next/link";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { DefinitionActions } from "@/components/definition-actions";

export const metadata: Metadata = { title: "VM definitions" };

export default async function DefinitionsPage() {
  const principal = await requirePrincipal();
  const api = await serverApi();
  const definitions = forClient<RouterOutputs["definitions"]["list"]>(await api.definitions.list());
  const canEdit = principal.role !== "viewer";
  return (
    <>
      <div className="spread">
        <h1>VM definitions</h1>
        {canEdit && (
          <Link className="button" href="/definitions/new">
            New definition
          </Link>
        )}
      </div>
      <div className="panel">
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Kernel</th>
              <th>vCPUs</th>
              <th>Memory</th>
              <th>Disks</th>
              <th>NICs</th>
              <th>Balloon</th>
              {canEdit && <th>Actions</th>}
            </tr>
          </thead>
          <tbody>
            {definitions.map((d) => (
              <tr key={d.id} data-testid={`definition-${d.name}`}>
                <td>
                  {canEdit ? <Link href={`/definitions/${d.id}`}>{d.name}</Link> : d.name}
                  {d.builtIn && <span className="muted small"> (built-in)</span>}
                  <div className="muted small">{d.description}</div>
                </td>
                <td className="mono small">{d.config.kernel.split("/").pop()}</td>
                <td>
                  {d.config.smp.cpus}/{d.config.smp.maxCpus}
                </td>
                <td>{d.config.memoryBytes / (1024 * 1024)} MiB</td>
                <td>{d.config.drives.length}</td>
                <td className="small" data-testid={`definition-${d.name}-nics`}>
                  {d.config.netdevs.length + d.nics.length === 0
                    ? "—"
                    : [
                        ...d.config.netdevs.map((n) =>
                          "ifname" in n ? `tap ${n.ifname}` : "tap fd",
                        ),
                        ...d.nics.map((n) =>
                          n.bridge === undefined ? `tap ${n.tap}` : `bridge ${n.bridge}`,
                        ),
                      ].join(", ")}
                </td>
                <td>
                  {d.config.devices.some((x) => x.driver === "virtio-balloon-device") ? "yes" : "—"}
                </td>
                {canEdit && (
                  <td>
                    <DefinitionActions id={d.id} name={d.name} />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {definitions.length === 0 && <p className="muted">No definitions yet.</p>}
      </div>
    </>
  );
}
