"use client";
// A raw QMP console: one command at a time, the VM's reply shown as it came.
import { useMutation } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC } from "@/lib/trpc";

const EXAMPLES = [
  "query-status",
  "query-cpus",
  "query-hotpluggable-cpus",
  "query-version",
  "query-commands",
  "stop",
  "cont",
];

interface Entry {
  command: string;
  reply: string;
  ok: boolean;
}

export function QmpConsole({ vmId }: { vmId: string }) {
  const trpc = useTRPC();
  const [execute, setExecute] = useState("query-status");
  const [args, setArgs] = useState("");
  const [argsError, setArgsError] = useState<string | null>(null);
  const [history, setHistory] = useState<Entry[]>([]);
  const qmp = useMutation(trpc.vms.qmp.mutationOptions());

  const send = (event: SyntheticEvent) => {
    event.preventDefault();
    let parsed: Record<string, unknown> | undefined;
    if (args.trim() !== "") {
      try {
        parsed = JSON.parse(args) as Record<string, unknown>;
      } catch {
        setArgsError("arguments: not valid JSON");
        return;
      }
    }
    setArgsError(null);
    const command = JSON.stringify({ execute, ...(parsed ? { arguments: parsed } : {}) });
    qmp.mutate(
      { id: vmId, execute, ...(parsed ? { arguments: parsed } : {}) },
      {
        onSuccess: (reply) =>
          setHistory((h) =>
            [
              {
                command,
                reply: JSON.stringify(reply, null, 2),
                ok: !("error" in (reply as object)),
              },
              ...h,
            ].slice(0, 50),
          ),
        onError: (error) =>
          setHistory((h) =>
            [{ command, reply: errorDetails(error).message, ok: false }, ...h].slice(0, 50),
          ),
      },
    );
  };

  return (
    <form onSubmit={send} aria-label="QMP console">
      <div className="row">
        <div className="field" style={{ flex: 1 }}>
          <label htmlFor="qmp-execute">execute</label>
          <input
            id="qmp-execute"
            list="qmp-examples"
            value={execute}
            onChange={(e) => setExecute(e.target.value)}
          />
          <datalist id="qmp-examples">
            {EXAMPLES.map((name) => (
              <option key={name} value={name} />
            ))}
          </datalist>
        </div>
        <div className={`field${argsError ? " invalid" : ""}`} style={{ flex: 2 }}>
          <label htmlFor="qmp-arguments">arguments (JSON, optional)</label>
          <input
            id="qmp-arguments"
            className="mono"
            value={args}
            onChange={(e) => setArgs(e.target.value)}
            placeholder='{"id": "..."}'
          />
          {argsError && <span className="field-error">{argsError}</span>}
        </div>
        <button className="primary" type="submit" disabled={qmp.isPending}>
          Send
        </button>
      </div>
      <div className="qmp-output" data-testid="qmp-output">
        {history.length === 0 ? (
          <span className="muted">Replies appear here.</span>
        ) : (
          history.map((entry, i) => (
            <div key={i} style={{ marginBottom: 10 }}>
              <div style={{ color: "#8fb4ff" }}>&gt; {entry.command}</div>
              <div style={{ color: entry.ok ? "#d5dde8" : "#ff9b9b" }}>{entry.reply}</div>
            </div>
          ))
        )}
      </div>
    </form>
  );
}
