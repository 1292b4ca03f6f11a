import type { Metadata } from "next";
import { requirePrincipal, serverApi } from "@/server/page-data";
import { DefinitionForm } from "@/components/definition-form";
import { EMPTY_CONFIG } from "@/lib/default-config";

export const metadata: Metadata = { title: "New definition" };

export default async function NewDefinitionPage() {
  await requirePrincipal();
  const api = await serverApi();
  // Start from the probe guest's kernel when there is one: a path that works here.
  const probe = (await api.definitions.list()).find((d) => d.name === "probe-guest");
  const config = { ...EMPTY_CONFIG, kernel: probe?.config.kernel ?? "" };
  return (
    <>
      <h1>New VM definition</h1>
      <DefinitionForm mode="create" name="" description="" config={config} nics={[]} />
    </>
  );
}
