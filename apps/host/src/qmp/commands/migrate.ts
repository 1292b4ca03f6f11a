// Snapshots through QMP's migration commands, as the seed does them:
// `migrate {"uri":"file:<dir>"}` writes <dir>/state and <dir>/memory
// (docs/snapshots.md) and `query-migrate` reports how it went. Live
// migration (tcp:, unix:) is not built yet and is refused by name.
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
    if (uri.startsWith("tcp:") || uri.startsWith("unix:")) {
      throw genericError(
        `uri: live migration ('${uri.split(":")[0]}:') is not supported yet; use file:<dir> for a snapshot`,
      );
    }
    throw genericError(`uri: '${uri}' is not a migration URI; expected file:<dir>`);
  },
});

export const queryMigrate = defineCommand({
  name: "query-migrate",
  args: z.object({}).strict(),
  handler: (_args, { vm }) => vm.migrationInfo(),
});
