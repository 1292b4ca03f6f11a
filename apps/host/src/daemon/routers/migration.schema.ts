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

/** An https destination's certificate, as the portal pinned it (pinned-tls.ts). */
const peerPin = z
  .object({
    fingerprint: z
      .string()
      .regex(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, "a SHA-256 fingerprint, AB:CD:… (32 pairs)"),
    cert: z
      .string()
      .min(1, "required")
      .max(16384, "at most 16384 characters (one PEM certificate)"),
  })
  .strict();

/** Another virgad, as the portal knows it: its URL, bearer token and, over https, its pinned certificate. */
export const migrationDestination = z
  .object({ url: peerUrl, token: z.string().min(1, "required"), pin: peerPin.optional() })
  .strict()
  .refine((destination) => !destination.url.startsWith("https:") || destination.pin, {
    message: "required for an https:// destination (its pinned certificate)",
    path: ["pin"],
  });

export const downtimeLimitMs = z
  .number()
  .int()
  .min(1, `must be 1..${MAX_DOWNTIME_LIMIT_MS} ms`)
  .max(MAX_DOWNTIME_LIMIT_MS, `must be 1..${MAX_DOWNTIME_LIMIT_MS} ms`);
/** Bytes per second; 0 for no limit. */
export const maxBandwidth = z.number().int().min(0, "must be ≥ 0 bytes/s (0: no limit)");

export const migrateInput = vmId
  .extend({
    /** Another virgad; leave it out with `local: true` for a new process on this host. */
    destination: migrationDestination.optional(),
    /** The guest moves to a new virga-vmm process here, over a unix socket; the VM keeps its id. */
    local: z.literal(true, { message: "true, or leave it out" }).optional(),
    migrationId: migrationId.optional(),
    downtimeLimitMs: downtimeLimitMs.optional(),
    maxBandwidth: maxBandwidth.optional(),
    /** Return when the migration has ended (default: once it is under way). */
    wait: z.boolean().optional(),
  })
  .superRefine((input, ctx) => {
    if (input.destination === undefined && input.local !== true) {
      ctx.addIssue({
        code: "custom",
        path: ["destination"],
        message: "required: another virgad's {url, token}, or local: true for this host",
      });
    }
    if (input.destination !== undefined && input.local === true) {
      ctx.addIssue({
        code: "custom",
        path: ["local"],
        message: "not with a destination: a migration goes to another virgad or stays here",
      });
    }
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
