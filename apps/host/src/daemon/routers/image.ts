// image.list, image.create (docs/virgad-api.md): disk images in the image
// directories; the work is in images.ts.
import { procedure, router } from "../trpc";
import { createImageInput } from "./devices.schema";

export const imageRouter = router({
  list: procedure.query(({ ctx }) => ctx.daemon.listImages()),
  create: procedure
    .input(createImageInput)
    .mutation(({ ctx, input }) => ctx.daemon.createImage(input)),
});
