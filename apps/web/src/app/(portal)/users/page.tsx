import type { Metadata } from "next";
import { redirect } from "next/navigation";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { UserManager } from "@/components/user-manager";

export const metadata: Metadata = { title: "Users" };

export default async function UsersPage() {
  const principal = await requirePrincipal();
  if (principal.role !== "admin") redirect("/vms");
  const api = await serverApi();
  const users = forClient<RouterOutputs["users"]["list"]>(await api.users.list());
  return (
    <>
      <h1>Users</h1>
      <UserManager initial={users} self={principal.userId} />
    </>
  );
}
