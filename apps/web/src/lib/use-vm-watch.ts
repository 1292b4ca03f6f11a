"use client";
// Live VM state in the browser: one subscription to vms.watch (SSE, resumed
// with the last event id after a drop) patches the cached VM list and detail
// queries as events arrive, so pages update without a reload.
import { useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useRef } from "react";
import { useTRPC, type RouterOutputs } from "./trpc";

export type WatchEvent = Extract<
  RouterOutputs["vms"]["watch"] extends AsyncIterable<infer T> ? T : never,
  object
>;
type VmList = RouterOutputs["vms"]["list"];
type VmDetail = RouterOutputs["vms"]["get"];
type PortalEvent = {
  id: number;
  vmId: string;
  event: string;
  state: string | null;
  timestamp: string;
  data: unknown;
};

/** The portal's own news of a host (hosts/health.ts), for no VM in particular. */
const HOST_EVENTS = new Set(["HOST_UNREACHABLE", "HOST_REACHABLE"]);

export function useVmWatch(onEvent?: (event: PortalEvent) => void) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const callback = useRef(onEvent);
  callback.current = onEvent;

  return useSubscription(
    trpc.vms.watch.subscriptionOptions(undefined, {
      onData: (envelope) => {
        const message = envelope.data;
        if (message.kind === "resync") {
          void queryClient.invalidateQueries({ queryKey: trpc.vms.pathKey() });
          return;
        }
        const event = message.event as PortalEvent;
        if (HOST_EVENTS.has(event.event)) {
          // A host lost or reached again: its VMs' states turn stale, or live.
          void queryClient.invalidateQueries({ queryKey: trpc.vms.pathKey() });
          void queryClient.invalidateQueries({ queryKey: trpc.hosts.pathKey() });
          return;
        }
        const listKey = trpc.vms.list.queryKey();
        const list = queryClient.getQueryData<VmList>(listKey);
        const known = list?.some((vm) => vm.id === event.vmId) ?? false;
        if (event.event === "VM_DELETED" || event.event === "VM_CREATED" || !known) {
          void queryClient.invalidateQueries({ queryKey: listKey });
        } else if (event.state !== null) {
          queryClient.setQueryData<VmList>(listKey, (old) =>
            old?.map((vm) =>
              vm.id === event.vmId ? { ...vm, state: event.state ?? vm.state } : vm,
            ),
          );
        }
        const detailKey = trpc.vms.get.queryKey({ id: event.vmId });
        if (event.state !== null) {
          queryClient.setQueryData<VmDetail>(detailKey, (old) =>
            old === undefined ? old : { ...old, state: event.state ?? old.state },
          );
        }
        void queryClient.invalidateQueries({
          queryKey: trpc.vms.events.queryKey({ id: event.vmId }),
        });
        callback.current?.(event);
      },
    }),
  );
}
