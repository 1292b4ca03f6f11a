// host.*: facts about this machine and its VMs.
import { procedure, router } from "../trpc";

export const hostRouter = router({
  info: procedure.query(({ ctx }) => ctx.daemon.hostInfo()),
});
