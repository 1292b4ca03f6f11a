// Inputs of vm.snapshot, vm.clone and template.* (docs/virgad-api.md). The
// portal checks its own inputs with these too. Names and the machine
// overrides are checked again by the daemon (templates.ts, clones.ts),
// which names the field.
import { z } from "zod";
import { INTERFACE_NAME_RULE, isInterfaceName, unicastMac } from "../../config/vm-config";
import { vmId } from "./vm.schema";

/** Like a VM id, so a template's name can prefix its clones' ids. */
export const TEMPLATE_NAME = /^[a-z0-9][a-z0-9-]{0,47}$/;
export const TEMPLATE_NAME_RULE =
  "1-48 lowercase letters, digits or '-', starting with a letter or digit";

/** Clones one vm.clone starts at once. */
export const MAX_CLONES = 50;

export const templateName = z.string().min(1);

export const snapshotInput = vmId.extend({
  template: templateName,
  stayPaused: z.boolean().optional(),
});

export const templateInput = z.object({ name: templateName });

export const cloneOverrides = z
  .object({
    name: z.string().min(1).max(256).optional(),
    bridge: z
      .string()
      .refine(isInterfaceName, `must be an interface name (${INTERFACE_NAME_RULE})`)
      .optional(),
    paused: z.boolean().optional(),
    append: z.string().optional(),
    /** The clone's MAC on the network (one clone of a template with one NIC). */
    mac: unicastMac.optional(),
    // The template's machine: accepted when equal, refused by name otherwise.
    machine: z.unknown().optional(),
    kernel: z.unknown().optional(),
    initrd: z.unknown().optional(),
    bootEntry: z.unknown().optional(),
    smp: z.unknown().optional(),
    memoryBytes: z.unknown().optional(),
    drives: z.unknown().optional(),
    netdevs: z.unknown().optional(),
    devices: z.unknown().optional(),
  })
  .strict();

export const cloneInput = z.object({
  template: templateName,
  count: z
    .number()
    .int()
    .min(1, `must be 1..${MAX_CLONES}`)
    .max(MAX_CLONES, `must be 1..${MAX_CLONES}`),
  namePrefix: z.string().min(1).optional(),
  overrides: cloneOverrides.optional(),
});
