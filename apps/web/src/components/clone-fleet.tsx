"use client";
// "Clone N" on a template's page and the progress of the run: the clones
// are listed as their host reports them (created, then running), each
// linking to its VM page, and once the host has answered for all of them,
// with the outcome of each (a clone that failed says why) and its own MACs.
import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC } from "@/lib/trpc";
import { StateBadge } from "./state-badge";

/** Rows created a little before the click still belong to this run (the host's clock may lag). */
const CLOCK_SLACK_MS = 2000;

interface Line {
  key: string;
  id: string | null;
  name: string;
  state: string | null;
  macs: string[];
  error: string | null;
}

export function CloneFleet({
  templateId,
  templateName,
}: {
  templateId: string;
  templateName: string;
}) {
  const trpc = useTRPC();
  const router = useRouter();
  const [count, setCount] = useState("3");
  const [prefix, setPrefix] = useState("");
  const [since, setSince] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const clone = useMutation(
    trpc.templates.clone.mutationOptions({
      onSuccess: () => {
        setError(null);
        router.refresh();
      },
      onError: (e) => setError(errorDetails(e).message),
    }),
  );
  const progress = useQuery(
    trpc.templates.clones.queryOptions(
      { id: templateId, ...(since === null ? {} : { since }) },
      { enabled: since !== null && clone.isPending, refetchInterval: 300 },
    ),
  );

  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    setSince(new Date(Date.now() - CLOCK_SLACK_MS).toISOString());
    clone.mutate({
      id: templateId,
      count: Number(count),
      ...(prefix.trim() === "" ? {} : { namePrefix: prefix.trim() }),
    });
  };

  const report = clone.data;
  const lines: Line[] =
    report === undefined
      ? (progress.data ?? []).map((vm) => ({
          key: vm.id,
          id: vm.id,
          name: vm.name,
          state: vm.state,
          macs: [],
          error: null,
        }))
      : report.clones.map((c) => ({
          key: c.hostVmId,
          id: c.id,
          name: c.name,
          state: c.state,
          macs: c.macs,
          error: c.error,
        }));

  return (
    <>
      <form onSubmit={submit} aria-label="Clone" className="attach">
        {error && (
          <div className="alert error" data-testid="clone-error">
            {error}
          </div>
        )}
        <div className="row">
          <div className="field">
            <label htmlFor="clone-count">Clones</label>
            <input
              id="clone-count"
              type="number"
              min={1}
              max={50}
              value={count}
              onChange={(e) => setCount(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="clone-prefix">Name prefix</label>
            <input
              id="clone-prefix"
              className="mono"
              placeholder={templateName}
              value={prefix}
              onChange={(e) => setPrefix(e.target.value)}
            />
          </div>
          <button className="primary" type="submit" disabled={clone.isPending}>
            {clone.isPending ? "Cloning…" : `Clone ${count}`}
          </button>
        </div>
      </form>
      {since !== null && (
        <div data-testid="clone-progress" data-done={report !== undefined}>
          <p className="small">
            {report === undefined
              ? `Starting ${count} clone${count === "1" ? "" : "s"}… ${lines.filter((l) => l.state === "running").length} running so far`
              : `${report.started} of ${report.requested} started in ${report.elapsedMs} ms${report.failed > 0 ? `, ${report.failed} failed` : ""}`}
          </p>
          <table>
            <thead>
              <tr>
                <th>Clone</th>
                <th>State</th>
                <th>MAC</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {lines.map((line) => (
                <tr key={line.key} data-testid={`clone-${line.name}`}>
                  <td>
                    {line.id === null ? (
                      line.name
                    ) : (
                      <Link href={`/vms/${line.id}`}>{line.name}</Link>
                    )}
                  </td>
                  <td>{line.state === null ? "—" : <StateBadge state={line.state} />}</td>
                  <td className="mono small">
                    {line.macs.length === 0 ? "—" : line.macs.join(", ")}
                  </td>
                  <td className="small">{line.error ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
