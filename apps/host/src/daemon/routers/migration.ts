// vm.migrate, vm.migrateCancel, vm.migration, vm.migrations (the source's
// side, migration.ts) and migration.prepareIncoming/abortIncoming, which a
// source virgad calls on its destination (incoming.ts).
import { procedure, router } from "../trpc";
import {
  abortIncomingInput,
  incomingInput,
  migrateCancelInput,
  migrateInput,
  migrationInput,
} from "./migration.schema";

/** Merged into the vm namespace. */
export const vmMigrationRouter = router({
  migrate: procedure
    .input(migrateInput)
    .mutation(({ ctx, input }) => ctx.daemon.migrations.migrate(input)),
  migrateCancel: procedure
    .input(migrateCancelInput)
    .mutation(({ ctx, input }) => ctx.daemon.migrations.cancel(input.id)),
  migration: procedure
    .input(migrationInput)
    .query(({ ctx, input }) => ctx.daemon.migrations.get(input.migrationId)),
  migrations: procedure.query(({ ctx }) => ctx.daemon.migrations.list()),
});

export const incomingRouter = router({
  prepareIncoming: procedure
    .input(incomingInput)
    .mutation(({ ctx, input }) => ctx.daemon.incoming.prepare(input)),
  abortIncoming: procedure
    .input(abortIncomingInput)
    .mutation(({ ctx, input }) => ctx.daemon.incoming.abort(input)),
});
