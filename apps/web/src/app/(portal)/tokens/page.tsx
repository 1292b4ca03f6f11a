import type { Metadata } from "next";
import { forClient, requirePrincipal, serverApi } from "@/server/page-data";
import type { RouterOutputs } from "@/lib/trpc";
import { TokenManager } from "@/components/token-manager";

export const metadata: Metadata = { title: "API tokens" };

export default async function TokensPage() {
  const principal = await requirePrincipal();
  const api = await serverApi();
  const tokens = forClient<RouterOutputs["tokens"]["list"]>(await api.tokens.list());
  return (
    <>
      <h1>API tokens</h1>
      <TokenManager initial={tokens} role={principal.role} />
    </>
  );
}
