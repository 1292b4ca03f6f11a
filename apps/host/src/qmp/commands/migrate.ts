// QMP's migration commands, as the seed uses them: `migrate file:<dir>`
// writes a snapshot (docs/snapshots.md) and returns when it is on disk;
// `migrate tcp:<host>:<port>` / `unix:<path>` starts a live migration in
// the background (docs/migration.md) that query-migrate follows and
// migrate_cancel stops; migrate-set-parameters sets QEMU's downtime limit
// and bandwidth.
import path from "node:path";
import { z } from "zod";
import { defineCommand } from "../command";
import { genericError } from "../wire";

export const migrate = defineCommand({
  name: "migrate",
  args: z
    .object({
      uri: z.string().min(1),
      // QEMU's flags for block migration: accepted when off, as libvirt sends them.
      blk: z.literal(false).optional(),
      inc: z.literal(false).optional(),
      detach: z.boolean().optional(),
    })
    .strict(),
  async handler(args, { vm }) {
    const { uri } = args;
    if (uri.startsWith("file:")) {
      const dir = uri.slice("file:".length);
      if (!path.isAbsolute(dir)) {
        throw genericError(`uri: the snapshot directory '${dir}' must be an absolute path`);
      }
      await vm.snapshot(path.normalize(dir));
      return {};
    }
    if (uri.startsWith("unix:")) {
      if (uri.length === "unix:".length) throw genericError("uri: the unix socket path is empty");
      await vm.migrate(uri);
      return {};
    }
    if (uri.startsWith("tcp:")) {
      const match = /^tcp:(\[[^\]]+\]|[^:]+):(\d+)$/.exec(uri);
      const port = Number(match?.[2] ?? "0");
      if (match === null || port < 1 || port > 65535) {
        throw genericError(`uri: '${uri}' is not tcp:<host>:<port> with a port 1..65535`);
      }
      await vm.migrate(uri);
      return {};
    }
    throw genericError(
      `uri: '${uri}' is not a migration URI; expected file:<dir>, tcp:<host>:<port> or unix:<path>`,
    );
  },
});

export const queryMigrate = defineCommand({
  name: "query-migrate",
  args: z.object({}).strict(),
  handler: (_args, { vm }) => vm.migrationInfo(),
});

/** QEMU answers {} whether or not a migration runs; so does this. */
export const migrateCancel = defineCommand({
  name: "migrate_cancel",
  args: z.object({}).strict(),
  async handler(_args, { vm }) {
    await vm.migrateCancel();
    return {};
  },
});

export const migrateSetParameters = defineCommand({
  name: "migrate-set-parameters",
  args: z
    .object({
      "downtime-limit": z.number().int().min(0).max(2000000).optional(),
      "max-bandwidth": z.number().int().min(0).optional(),
    })
    .strict(),
  handler(args, { vm }) {
    vm.setMigrationParameters(args);
    return {};
  },
});

export const queryMigrateParameters = defineCommand({
  name: "query-migrate-parameters",
  args: z.object({}).strict(),
  handler: (_args, { vm }) => vm.migrationParameters(),
});
