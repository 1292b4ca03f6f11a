"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { errorDetails, useTRPC, type RouterOutputs } from "@/lib/trpc";

type User = RouterOutputs["users"]["list"][number];
const ROLES = ["viewer", "operator", "admin"] as const;
type Role = (typeof ROLES)[number];

export function UserManager({ initial, self }: { initial: User[]; self: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const users = useQuery(trpc.users.list.queryOptions(undefined, { initialData: initial }));
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const create = useMutation(
    trpc.users.create.mutationOptions({
      onSuccess: () => {
        setUsername("");
        setPassword("");
        void refresh();
      },
    }),
  );
  const setUserRole = useMutation(
    trpc.users.setRole.mutationOptions({ onSuccess: () => void refresh() }),
  );
  const remove = useMutation(
    trpc.users.delete.mutationOptions({ onSuccess: () => void refresh() }),
  );
  const errors = create.error ? errorDetails(create.error) : null;
  const submit = (event: SyntheticEvent) => {
    event.preventDefault();
    create.mutate({ username, password, role });
  };
  return (
    <>
      <div className="panel">
        <table>
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.data.map((user) => (
              <tr key={user.id}>
                <td>{user.username}</td>
                <td>
                  <select
                    aria-label={`Role of ${user.username}`}
                    value={user.role}
                    disabled={user.id === self}
                    onChange={(e) =>
                      setUserRole.mutate({ id: user.id, role: e.target.value as Role })
                    }
                  >
                    {ROLES.map((r) => (
                      <option key={r} value={r}>
                        {r}
                      </option>
                    ))}
                  </select>
                </td>
                <td className="small">{new Date(user.createdAt).toLocaleString()}</td>
                <td>
                  {user.id !== self && (
                    <button
                      type="button"
                      className="danger"
                      onClick={() => {
                        if (confirm(`Delete ${user.username}?`)) remove.mutate({ id: user.id });
                      }}
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form className="panel" onSubmit={submit} aria-label="Add a user">
        <h2>Add a user</h2>
        {errors && <div className="alert error">{errors.message}</div>}
        <div className="row">
          <div className={`field${errors?.fields.username ? " invalid" : ""}`}>
            <label htmlFor="user-name">Username</label>
            <input id="user-name" value={username} onChange={(e) => setUsername(e.target.value)} />
            {errors?.fields.username && (
              <span className="field-error">{errors.fields.username}</span>
            )}
          </div>
          <div className={`field${errors?.fields.password ? " invalid" : ""}`}>
            <label htmlFor="user-password">Password</label>
            <input
              id="user-password"
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
            {errors?.fields.password && (
              <span className="field-error">{errors.fields.password}</span>
            )}
          </div>
          <div className="field">
            <label htmlFor="user-role">Role</label>
            <select id="user-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </div>
          <button className="primary" type="submit" disabled={create.isPending}>
            Add
          </button>
        </div>
      </form>
    </>
  );
}
