// Inputs of the device and image procedures (docs/virgad-api.md). The
// portal checks its own inputs with these too, so both name a bad field the
// same way.
import { z } from "zod";
import {
  BLOCK_SLOTS,
  INTERFACE_NAME_RULE,
  NET_SLOTS,
  isInterfaceName,
  unicastMac,
} from "../../config/vm-config";
import { vmId } from "./vm.schema";

export const diskSlot = z
  .number()
  .int()
  .min(0, `must be 0..${BLOCK_SLOTS - 1}`)
  .max(
    BLOCK_SLOTS - 1,
    `must be 0..${BLOCK_SLOTS - 1} (the microvm has ${BLOCK_SLOTS} disk slots)`,
  );
export const nicSlot = z
  .number()
  .int()
  .min(0, `must be 0..${NET_SLOTS - 1}`)
  .max(NET_SLOTS - 1, `must be 0..${NET_SLOTS - 1} (the microvm has ${NET_SLOTS} NIC slots)`);
const ifname = z
  .string()
  .refine(isInterfaceName, `must be an interface name (${INTERFACE_NAME_RULE})`);
const mac = unicastMac;

export const attachDiskInput = vmId.extend({
  file: z.string().min(1),
  readOnly: z.boolean().optional(),
  direct: z.boolean().optional(),
  slot: diskSlot.optional(),
});

/** A NIC's backend and MAC, as virgad attaches it and a portal definition keeps it. */
export const nicSpec = z.object({
  /** An existing tap, by name... */
  tap: ifname.optional(),
  /** ...or a bridge virgad makes a tap on. */
  bridge: ifname.optional(),
  mac: mac.optional(),
});

export function hasOneBackend(nic: { tap?: string | undefined; bridge?: string | undefined }) {
  return (nic.tap === undefined) !== (nic.bridge === undefined);
}

export const attachNicInput = vmId
  .merge(nicSpec)
  .extend({ slot: nicSlot.optional() })
  .refine(hasOneBackend, {
    message: "give either tap (an existing tap) or bridge (virgad makes a tap on it)",
    path: ["tap"],
  });

export const setBalloonInput = vmId.extend({
  bytes: z.number().int().min(1, "must be a positive number of bytes"),
});

export const detachDiskInput = vmId.extend({ slot: diskSlot });
export const detachNicInput = vmId.extend({ slot: nicSlot });

export const createImageInput = z.object({
  name: z.string().min(1),
  sizeBytes: z.number().int(),
  dir: z.string().min(1).optional(),
});
