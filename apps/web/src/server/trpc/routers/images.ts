// images.*: disk images in a host's image directories — listed for the disk
// picker (viewer), and blank raw images created there (operator).
import { createImageInput } from "@virga/host/src/daemon/routers/devices.schema";
import { z } from "zod";
import { findHost, onHost } from "../../vms/lookup";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

const hostId = z.string().min(1, "required");

export const imagesRouter = router({
  list: viewerProcedure.input(z.object({ hostId })).query(async ({ input }) => {
    const host = await findHost(input.hostId);
    return onHost(host, (c) => c.image.list.query());
  }),

  /** A sparse raw image named `name` (no path), 1 MiB..2 TiB, in the host's run directory's images/ unless `dir` names another image directory. */
  create: operatorProcedure
    .input(createImageInput.extend({ hostId }))
    .mutation(async ({ input }) => {
      const { hostId: id, ...image } = input;
      const host = await findHost(id);
      return onHost(host, (c) => c.image.create.mutate(image));
    }),
});
