// host.*: facts about this machine and its VMs.
import { hostPci } from "../host-pci";
import { procedure, router } from "../trpc";

export const hostRouter = router({
  info: procedure.query(({ ctx }) => ctx.daemon.hostInfo()),
  /** What the caller's token may do, so a client (the portal's hosts.add) can tell the admin. */
  /** The host's PCI functions with their IOMMU group and driver: what vm.attachVfio can pass through. */
  pciDevices: procedure.query(() => hostPci()),
  whoami: procedure.query(({ ctx }) => ({ scope: ctx.scope })),
});
