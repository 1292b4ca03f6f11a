// vm.devices, vm.attachDisk/detachDisk, vm.attachNic/detachNic, vm.balloon
// and vm.setBalloon (docs/virgad-api.md): typed device procedures; the work
// is in devices.ts.
import {
  attachDisk,
  attachNic,
  balloonInfo,
  detachDisk,
  detachNic,
  listDevices,
  setBalloon,
} from "../devices";
import { procedure, router } from "../trpc";
import {
  attachDiskInput,
  attachNicInput,
  detachDiskInput,
  detachNicInput,
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
  balloon: procedure.input(vmId).query(({ ctx, input }) => balloonInfo(ctx.daemon.vm(input.id))),
  setBalloon: procedure
    .input(setBalloonInput)
    .mutation(({ ctx, input }) => setBalloon(ctx.daemon.vm(input.id), input.bytes)),
});
