// vm.snapshot, vm.clone and template.list/get/delete (docs/virgad-api.md):
// snapshot templates and their clones; the work is in templates.ts and
// clones.ts.
import { procedure, router } from "../trpc";
import { cloneInput, snapshotInput, templateInput } from "./templates.schema";

/** Merged into the vm namespace. */
export const cloneRouter = router({
  snapshot: procedure.input(snapshotInput).mutation(({ ctx, input }) => ctx.daemon.snapshot(input)),
  clone: procedure.input(cloneInput).mutation(({ ctx, input }) => ctx.daemon.clone(input)),
});

export const templateRouter = router({
  list: procedure.query(({ ctx }) => ctx.daemon.templates.list()),
  get: procedure
    .input(templateInput)
    .query(({ ctx, input }) => ctx.daemon.templates.get(input.name, "name")),
  delete: procedure
    .input(templateInput)
    .mutation(({ ctx, input }) => ctx.daemon.deleteTemplate(input.name)),
});
