// image.list, image.create (docs/virgad-api.md): disk images in the image
// directories; the work is in images.ts.
import { z } from "zod";
import { procedure, router } from "../trpc";

export const createImageInput = z.object({
  name: z.string().min(1),
  sizeBytes: z.number().int(),
  dir: z.string().min(1).optional(),
});

export const imageRouter = router({
  list: procedure.query(({ ctx }) => ctx.daemon.listImages()),
  create: procedure
    .input(createImageInput)
    .mutation(({ ctx, input }) => ctx.daemon.createImage(input)),
});
