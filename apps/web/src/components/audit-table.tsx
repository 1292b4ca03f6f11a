"use client";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTRPC, type RouterOutputs } from "@/lib/trpc";

type Entry = RouterOutputs["audit"]["list"][number];

export function AuditTable({ initial }: { initial: Entry[] }) {
  const trpc = useTRPC();
  const [action, setAction] = useState("");
  const input = { limit: 200, ...(action ? { action } : {}) };
  const entries = useQuery(
    trpc.audit.list.queryOptions(input, {
      initialData: action ? undefined : initial,
      refetchInterval: 3000,
    }),
  );
  return (
    <div className="panel">
      <div className="field" style={{ maxWidth: 320 }}>
        <label htmlFor="audit-action">Filter by action</label>
        <input
          id="audit-action"
          value={action}
          onChange={(e) => setAction(e.target.value)}
          placeholder="e.g. vms.pause"
        />
      </div>
      <table data-testid="audit-table">
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>Action</th>
            <th>Target</th>
            <th>Via</th>
            <th>Result</th>
          </tr>
        </thead>
        <tbody>
          {(entries.data ?? []).map((entry) => (
            <tr key={entry.id} data-action={entry.action}>
              <td className="small">{new Date(entry.at).toLocaleString()}</td>
              <td>{entry.actor}</td>
              <td className="mono">{entry.action}</td>
              <td className="mono small">{entry.target ?? "—"}</td>
              <td>{entry.via}</td>
              <td>
                {entry.result === "ok" ? (
                  <span className="state state-running">ok</span>
                ) : (
                  <span className="state state-crashed" title={entry.error ?? ""}>
                    error
                  </span>
                )}
                {entry.error && <div className="small muted">{entry.error}</div>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
