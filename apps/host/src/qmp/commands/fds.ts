// getfd / closefd: a client passes a descriptor (a tap, a disk) with
// SCM_RIGHTS alongside getfd, and later commands refer to it by name.
import { z } from "zod";
import { defineCommand } from "../command";
import { genericError } from "../wire";

const fdname = z.object({ fdname: z.string().min(1) }).strict();

export const getfd = defineCommand({
  name: "getfd",
  args: fdname,
  handler(args, ctx) {
    if (/^\d/.test(args.fdname)) {
      throw genericError(
        `Parameter 'fdname' expects a name not starting with a digit, got '${args.fdname}'`,
      );
    }
    const fd = ctx.takeReceivedFd();
    if (fd === undefined) throw genericError("No file descriptor supplied via SCM_RIGHTS");
    ctx.vm.fds.put(args.fdname, fd);
    return {};
  },
});

export const closefd = defineCommand({
  name: "closefd",
  args: fdname,
  handler(args, { vm }) {
    if (!vm.fds.close(args.fdname))
      throw genericError(`File descriptor named '${args.fdname}' not found`);
    return {};
  },
});
