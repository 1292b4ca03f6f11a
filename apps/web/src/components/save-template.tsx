"use client";
// "Save as template" on a VM page: snapshots the running or paused VM into
// a named template on its host (memory, devices and disk copies of one
// instant). The VM runs on afterwards unless "leave it paused" is ticked.
import { useMutation } from "@tanstack/react-query";
import Link from "next/link";
import { useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC } from "@/lib/trpc";

export function SaveTemplate({ vmId, defaultName }: { vmId: string; defaultName: string }) {
  const trpc = useTRPC();
  const [name, setName] = useState(defaultName);
  const [stayPaused, setStayPaused] = useState(false);
  const [error, setError] = useState<{ message: string; name?: string } | null>(null);
  const save = useMutation(
    trpc.templates.create.mutationOptions({
      onSuccess: () => setError(null),
      onError: (e) => {
        const details = errorDetails(e);
        setError({
          message: details.message,
          ...(details.fields.name ? { name: details.fields.name } : {}),
        });
      },
    }),
  );
  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    save.mutate({ vmId, name: name.trim(), stayPaused });
  };
  return (
    <form onSubmit={submit} aria-label="Save as template" className="attach">
      {error && (
        <div className="alert error" data-testid="save-template-error">
          {error.message}
        </div>
      )}
      {save.data && (
        <div className="alert info" data-testid="save-template-done">
          Saved as template <Link href={`/templates/${save.data.id}`}>{save.data.name}</Link> (
          {Math.round(save.data.sizeBytes / (1024 * 1024))} MiB on disk)
        </div>
      )}
      <div className="row">
        <div className={`field${error?.name ? " invalid" : ""}`}>
          <label htmlFor="template-name">Template name</label>
          <input
            id="template-name"
            className="mono"
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
        </div>
        <label className="small">
          <input
            type="checkbox"
            checked={stayPaused}
            onChange={(e) => setStayPaused(e.target.checked)}
          />{" "}
          leave it paused
        </label>
        <button className="primary" type="submit" disabled={save.isPending || name.trim() === ""}>
          {save.isPending ? "Saving…" : "Save as template"}
        </button>
      </div>
    </form>
  );
}
