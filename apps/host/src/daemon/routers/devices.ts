// vm.devices, vm.attachDisk/detachDisk, vm.attachNic/detachNic, vm.balloon
// and vm.setBalloon (docs/virgad-api.md): typed device procedures; the work
// is in devices.ts.
import { z } from "zod";
import { BLOCK_SLOTS, IFNAME_PATTERN, MAC_PATTERN, NET_SLOTS } from "../../config/vm-config";
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
import { vmId } from "./vm.schema";

const diskSlot = z
  .number()
  .int()
  .min(0, `must be 0..${BLOCK_SLOTS - 1}`)
  .max(
    BLOCK_SLOTS - 1,
    `must be 0..${BLOCK_SLOTS - 1} (the microvm has ${BLOCK_SLOTS} disk slots)`,
  );
const nicSlot = z
  .number()
  .int()
  .min(0, `must be 0..${NET_SLOTS - 1}`)
  .max(NET_SLOTS - 1, `must be 0..${NET_SLOTS - 1} (the microvm has ${NET_SLOTS} NIC slots)`);
const ifname = z
  .string()
  .regex(IFNAME_PATTERN, "must be an interface name of 1-15 bytes without '/' or spaces");

export const attachDiskInput = vmId.extend({
  file: z.string().min(1),
  readOnly: z.boolean().optional(),
  direct: z.boolean().optional(),
  slot: diskSlot.optional(),
});

export const attachNicInput = vmId
  .extend({
    tap: ifname.optional(),
    bridge: ifname.optional(),
    mac: z
      .string()
      .regex(MAC_PATTERN, "must be a unicast MAC address like 52:54:00:12:34:56")
      .optional(),
    slot: nicSlot.optional(),
  })
  .refine((input) => (input.tap === undefined) !== (input.bridge === undefined), {
    message: "give either tap (an existing tap) or bridge (virgad makes a tap on it)",
    path: ["tap"],
  });

export const setBalloonInput = vmId.extend({
  bytes: z.number().int().min(1, "must be a positive number of bytes"),
});

export const deviceRouter = router({
  devices: procedure.input(vmId).query(({ ctx, input }) => listDevices(ctx.daemon.vm(input.id))),
  attachDisk: procedure
    .input(attachDiskInput)
    .mutation(({ ctx, input }) => attachDisk(ctx.daemon.vm(input.id), ctx.daemon.images, input)),
  detachDisk: procedure
    .input(vmId.extend({ slot: diskSlot }))
    .mutation(({ ctx, input }) => detachDisk(ctx.daemon.vm(input.id), input.slot)),
  attachNic: procedure
    .input(attachNicInput)
    .mutation(({ ctx, input }) => attachNic(ctx.daemon.vm(input.id), input)),
  detachNic: procedure
    .input(vmId.extend({ slot: nicSlot }))
    .mutation(({ ctx, input }) => detachNic(ctx.daemon.vm(input.id), input.slot)),
  balloon: procedure.input(vmId).query(({ ctx, input }) => balloonInfo(ctx.daemon.vm(input.id))),
  setBalloon: procedure
    .input(setBalloonInput)
    .mutation(({ ctx, input }) => setBalloon(ctx.daemon.vm(input.id), input.bytes)),
});
