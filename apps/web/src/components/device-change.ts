"use client";
// What the VM page's device panels share: sizes for people, and the
// refresh (devices, images) and error handling after a change.
import { useQueryClient } from "@tanstack/react-query";
import { errorDetails, useTRPC } from "@/lib/trpc";

const MIB = 1024 * 1024;

export function formatSize(bytes: number | null): string {
  if (bytes === null) return "—";
  if (bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3} GiB`;
  if (bytes >= MIB) return `${Math.round((bytes / MIB) * 10) / 10} MiB`;
  return `${bytes} B`;
}

/** Refreshes the device slots (and the VM) after a change. */
export function useDeviceChange(vmId: string, setError: (message: string | null) => void) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  return {
    onSuccess: () => {
      setError(null);
      void queryClient.invalidateQueries({ queryKey: trpc.vms.devices.queryKey({ id: vmId }) });
      void queryClient.invalidateQueries({ queryKey: trpc.images.list.pathKey() });
    },
    onError: (e: unknown) => setError(errorDetails(e).message),
  };
}
