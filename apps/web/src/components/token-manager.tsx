"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC, type RouterOutputs } from "@/lib/trpc";

type Token = RouterOutputs["tokens"]["list"][number];
const ROLES = ["viewer", "operator", "admin"] as const;

export function TokenManager({
  initial,
  role,
}: {
  initial: Token[];
  role: (typeof ROLES)[number];
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const tokens = useQuery(trpc.tokens.list.queryOptions(undefined, { initialData: initial }));
  const [name, setName] = useState("");
  const [tokenRole, setTokenRole] = useState<(typeof ROLES)[number]>(role);
  const [secret, setSecret] = useState<string | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.tokens.list.queryKey() });
  const create = useMutation(
    trpc.tokens.create.mutationOptions({
      onSuccess: (created) => {
        setSecret(created.token);
        setName("");
        void refresh();
      },
    }),
  );
  const revoke = useMutation(
    trpc.tokens.revoke.mutationOptions({ onSuccess: () => void refresh() }),
  );
  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    create.mutate({ name, role: tokenRole });
  };
  const errors = create.error ? errorDetails(create.error) : null;
  const allowed = ROLES.slice(0, ROLES.indexOf(role) + 1);

  return (
    <>
      <form className="panel" onSubmit={submit} aria-label="Create a token">
        <h2>Create a token</h2>
        {errors && <div className="alert error">{errors.message}</div>}
        <div className="row">
          <div className={`field${errors?.fields.name ? " invalid" : ""}`}>
            <label htmlFor="token-name">Name</label>
            <input
              id="token-name"
              value={name}
              onChange={(e) => setName(e.target.value)}
              placeholder="ci, backup script…"
            />
            {errors?.fields.name && <span className="field-error">{errors.fields.name}</span>}
          </div>
          <div className="field">
            <label htmlFor="token-role">Role</label>
            <select
              id="token-role"
              value={tokenRole}
              onChange={(e) => setTokenRole(e.target.value as (typeof ROLES)[number])}
            >
              {allowed.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </div>
          <button className="primary" type="submit" disabled={create.isPending}>
            Create
          </button>
        </div>
        {secret && (
          <div className="alert info">
            Copy this token now; it is not shown again:
            <div className="token-secret mono" data-testid="new-token">
              {secret}
            </div>
          </div>
        )}
      </form>
      <div className="panel">
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Owner</th>
              <th>Role</th>
              <th>Starts with</th>
              <th>Created</th>
              <th>Last used</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {tokens.data.map((token) => (
              <tr key={token.id}>
                <td>{token.name}</td>
                <td>{token.user.username}</td>
                <td>{token.role}</td>
                <td className="mono">{token.prefix}…</td>
                <td className="small">{new Date(token.createdAt).toLocaleString()}</td>
                <td className="small">
                  {token.lastUsedAt ? new Date(token.lastUsedAt).toLocaleString() : "never"}
                </td>
                <td>
                  {token.revokedAt ? (
                    <span className="muted">revoked</span>
                  ) : (
                    <button
                      type="button"
                      className="danger"
                      onClick={() => revoke.mutate({ id: token.id })}
                    >
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
