// The portal's API: every router, listed by hand.
import { auditRouter } from "./routers/audit";
import { authRouter } from "./routers/auth";
import { definitionsRouter } from "./routers/definitions";
import { hostsRouter } from "./routers/hosts";
import { templatesRouter } from "./routers/templates";
import { imagesRouter } from "./routers/images";
import { migrationsRouter } from "./routers/migrations";
import { tokensRouter } from "./routers/tokens";
import { usersRouter } from "./routers/users";
import { vmDevicesRouter } from "./routers/vm-devices";
import { vmsRouter } from "./routers/vms";
import { createCallerFactory, mergeRouters, router } from "./trpc";

export const appRouter = router({
  auth: authRouter,
  users: usersRouter,
  tokens: tokensRouter,
  hosts: hostsRouter,
  definitions: definitionsRouter,
  /** Lifecycle, QMP and events (vms.ts) with disks, NICs and the balloon (vm-devices.ts). */
  vms: mergeRouters(vmsRouter, vmDevicesRouter),
  images: imagesRouter,
  templates: templatesRouter,
  migrations: migrationsRouter,
  audit: auditRouter,
});

export type AppRouter = typeof appRouter;

export const createCaller = createCallerFactory(appRouter);
