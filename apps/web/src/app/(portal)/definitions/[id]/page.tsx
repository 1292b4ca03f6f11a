import type { Metadata } from "next";
import { notFound } from "next/navigation";
import { TRPCError } from "@trpc/server";
import { serverApi } from "@/server/page-data";
import { DefinitionForm } from "@/components/definition-form";

export const metadata: Metadata = { title: "Edit definition" };

export default async function EditDefinitionPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const api = await serverApi();
  let definition;
  try {
    definition = await api.definitions.get({ id });
  } catch (error) {
    if (error instanceof TRPCError && error.code === "NOT_FOUND") notFound();
    throw error;
  }
  return (
    <>
      <h1>Edit {definition.name}</h1>
      <DefinitionForm
        mode="edit"
        id={definition.id}
        name={definition.name}
        description={definition.description}
        config={definition.config}
        nics={definition.nics}
      />
    </>
  );
}
