// Inputs of the vm router (docs/virgad-api.md).
import { z } from "zod";
import type { VmConfigInput } from "../vm-input";

export const vmId = z.object({ id: z.string().min(1) });

/** The config is checked by the daemon (vm-input.ts), which names the bad field. */
export const createInput = z.object({
  id: z.string().min(1).optional(),
  name: z.string().min(1).max(256).optional(),
  config: z.custom<VmConfigInput>(
    (value) => typeof value === "object" && value !== null && !Array.isArray(value),
    "config: expected an object",
  ),
});

export const startInput = vmId.extend({ paused: z.boolean().optional() });

/** `arguments` is checked with the command (qmp-allow-list.ts), which names what is wrong. */
export const qmpInput = vmId.extend({
  execute: z.string().min(1),
  arguments: z.unknown().optional(),
});

/** `lastEventId` is what tRPC's wsLink/httpSubscriptionLink send back on reconnect. */
const lastEventId = z
  .string()
  .regex(/^\d+$/, "lastEventId: expected the id of an earlier message (digits)")
  .nullish();

export const eventsInput = z.object({ id: z.string().min(1).optional(), lastEventId });

export const consoleInput = vmId.extend({ lastEventId });

export const MAX_CONSOLE_INPUT = 64 * 1024;
export const consoleWriteInput = vmId.extend({
  data: z.string().max(MAX_CONSOLE_INPUT, `data: at most ${MAX_CONSOLE_INPUT} characters`),
});
