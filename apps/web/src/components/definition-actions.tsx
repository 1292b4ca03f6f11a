"use client";
import { useMutation } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { errorDetails, useTRPC } from "@/lib/trpc";

export function DefinitionActions({ id, name }: { id: string; name: string }) {
  const trpc = useTRPC();
  const router = useRouter();
  const done = {
    onSuccess: () => router.refresh(),
    onError: (e: unknown) => alert(errorDetails(e).message),
  };
  const clone = useMutation(trpc.definitions.clone.mutationOptions(done));
  const remove = useMutation(trpc.definitions.delete.mutationOptions(done));
  return (
    <div className="row">
      <Link className="button" href={`/definitions/${id}`}>
        Edit
      </Link>
      <button type="button" onClick={() => clone.mutate({ id })} disabled={clone.isPending}>
        Clone
      </button>
      <button
        type="button"
        className="danger"
        disabled={remove.isPending}
        onClick={() => {
          if (confirm(`Delete definition '${name}'?`)) remove.mutate({ id });
        }}
      >
        Delete
      </button>
    </div>
  );
}
