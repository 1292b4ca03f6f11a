"use client";
import { useMutation } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { errorDetails, useTRPC } from "@/lib/trpc";

export function DeleteTemplate({ id, name }: { id: string; name: string }) {
  const trpc = useTRPC();
  const router = useRouter();
  const remove = useMutation(
    trpc.templates.delete.mutationOptions({
      onSuccess: () => {
        router.push("/templates");
        router.refresh();
      },
      onError: (e: unknown) => alert(errorDetails(e).message),
    }),
  );
  return (
    <button
      type="button"
      className="danger"
      disabled={remove.isPending}
      onClick={() => {
        if (confirm(`Delete template '${name}'? Running clones keep running.`)) {
          remove.mutate({ id });
        }
      }}
    >
      Delete
    </button>
  );
}
