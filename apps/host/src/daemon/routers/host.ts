// host.*: facts about this machine and its VMs.
import { procedure, router } from "../trpc";

export const hostRouter = router({
  info: procedure.query(({ ctx }) => ctx.daemon.hostInfo()),
  /** What the caller's token may do, so a client (the portal's hosts.add) can tell the admin. */
  whoami: procedure.query(({ ctx }) => ({ scope: ctx.scope })),
});
