// vm.devices, vm.attachDisk/detachDisk, vm.attachNic/detachNic, vm.balloon
// and vm.setBalloon (docs/virgad-api.md): typed device procedures; the work
// is in devices.ts. q35 VMs: vm.attachPciDisk, vm.attachPciNic,
// vm.attachVfio and vm.detachPci (pci-devices.ts).
import {
  attachDisk,
  attachNic,
  balloonInfo,
  detachDisk,
  detachNic,
  listDevices,
  setBalloon,
} from "../devices";
import { attachPciDisk, attachPciNic, attachVfio, detachPci } from "../pci-devices";
import { procedure, router } from "../trpc";
import {
  attachDiskInput,
  attachNicInput,
  attachPciDiskInput,
  attachPciNicInput,
  attachVfioInput,
  detachDiskInput,
  detachNicInput,
  detachPciInput,
  setBalloonInput,
} from "./devices.schema";
import { vmId } from "./vm.schema";

export const deviceRouter = router({
  devices: procedure.input(vmId).query(({ ctx, input }) => listDevices(ctx.daemon.vm(input.id))),
  attachDisk: procedure
    .input(attachDiskInput)
    .mutation(({ ctx, input }) => attachDisk(ctx.daemon.vm(input.id), ctx.daemon.images, input)),
  detachDisk: procedure
    .input(detachDiskInput)
    .mutation(({ ctx, input }) => detachDisk(ctx.daemon.vm(input.id), input.slot)),
  attachNic: procedure
    .input(attachNicInput)
    .mutation(({ ctx, input }) => attachNic(ctx.daemon.vm(input.id), input)),
  detachNic: procedure
    .input(detachNicInput)
    .mutation(({ ctx, input }) => detachNic(ctx.daemon.vm(input.id), input.slot)),
  attachPciDisk: procedure
    .input(attachPciDiskInput)
    .mutation(({ ctx, input }) => attachPciDisk(ctx.daemon.vm(input.id), ctx.daemon.images, input)),
  attachPciNic: procedure
    .input(attachPciNicInput)
    .mutation(({ ctx, input }) => attachPciNic(ctx.daemon.vm(input.id), input)),
  attachVfio: procedure
    .input(attachVfioInput)
    .mutation(({ ctx, input }) => attachVfio(ctx.daemon.vm(input.id), input)),
  detachPci: procedure
    .input(detachPciInput)
    .mutation(({ ctx, input }) => detachPci(ctx.daemon.vm(input.id), input.device)),
  balloon: procedure.input(vmId).query(({ ctx, input }) => balloonInfo(ctx.daemon.vm(input.id))),
  setBalloon: procedure
    .input(setBalloonInput)
    .mutation(({ ctx, input }) => setBalloon(ctx.daemon.vm(input.id), input.bytes)),
});
