// Inputs of vm.migrate, vm.migrateCancel, vm.migration and the
// destination's migration.* procedures (docs/virgad-api.md, "Live
// migration"). The portal checks its own inputs with the same bounds.
import { z } from "zod";
import { MAC_PATTERN, vmConfigSchema } from "../../config/vm-config";
import { vmId } from "./vm.schema";

/** A migration's id: chosen by the caller (the portal passes its own) or made by virgad. */
export const MIGRATION_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const MIGRATION_ID_RULE =
  "1-64 letters, digits, '_' or '-', starting with a letter or digit";
/** QEMU's bounds for downtime-limit (ms). */
export const MAX_DOWNTIME_LIMIT_MS = 2000000;

export const migrationId = z.string().regex(MIGRATION_ID, MIGRATION_ID_RULE);

export const peerUrl = z
  .string()
  .url("an http:// or https:// URL of a virgad, e.g. http://10.0.0.2:7788")
  .refine((url) => /^https?:\/\//.test(url), "an http:// or https:// URL");

/** Another virgad, as the portal knows it: its URL and bearer token. */
export const migrationDestination = z
  .object({ url: peerUrl, token: z.string().min(1, "required") })
  .strict();

export const downtimeLimitMs = z
  .number()
  .int()
  .min(1, `must be 1..${MAX_DOWNTIME_LIMIT_MS} ms`)
  .max(MAX_DOWNTIME_LIMIT_MS, `must be 1..${MAX_DOWNTIME_LIMIT_MS} ms`);
/** Bytes per second; 0 for no limit. */
export const maxBandwidth = z.number().int().min(0, "must be ≥ 0 bytes/s (0: no limit)");

export const migrateInput = vmId.extend({
  destination: migrationDestination,
  migrationId: migrationId.optional(),
  downtimeLimitMs: downtimeLimitMs.optional(),
  maxBandwidth: maxBandwidth.optional(),
  /** Return when the migration has ended (default: once it is under way). */
  wait: z.boolean().optional(),
});

export const migrationInput = z.object({ migrationId });
export const migrateCancelInput = vmId;

/** What the source sends the destination virgad: the machine to rebuild (incoming.ts). */
export const incomingInput = z.object({
  migrationId,
  id: z.string().min(1),
  name: z.string().min(1).max(256),
  /** The source's config as it runs there; the destination rewires it to itself. */
  config: vmConfigSchema,
  /** Each NIC: its slot, the MAC the guest read, the bridge its tap is on. */
  nics: z.array(
    z.object({
      slot: z.number().int().min(0),
      mac: z.string().regex(MAC_PATTERN, "a unicast MAC"),
      bridge: z.string().min(1),
    }),
  ),
  /** Each disk file and its size at the source (shared storage: the same file here). */
  disks: z.array(z.object({ file: z.string().min(1), sizeBytes: z.number().int().min(0) })),
  /** The source was paused: the destination stays paused after taking over. */
  paused: z.boolean(),
  /** Who is sending (for logs and events). */
  source: z.string().max(256),
});

export const abortIncomingInput = z.object({ id: z.string().min(1), migrationId });
