// The portal's API: every router, listed by hand.
import { auditRouter } from "./routers/audit";
import { authRouter } from "./routers/auth";
import { definitionsRouter } from "./routers/definitions";
import { hostsRouter } from "./routers/hosts";
import { tokensRouter } from "./routers/tokens";
import { usersRouter } from "./routers/users";
import { vmsRouter } from "./routers/vms";
import { createCallerFactory, router } from "./trpc";

export const appRouter = router({
  auth: authRouter,
  users: usersRouter,
  tokens: tokensRouter,
  hosts: hostsRouter,
  definitions: definitionsRouter,
  vms: vmsRouter,
  audit: auditRouter,
});

export type AppRouter = typeof appRouter;

export const createCaller = createCallerFactory(appRouter);
