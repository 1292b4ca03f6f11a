// virgad's tRPC router. The portal imports `AppRouter` as a type only.
import { createCallerFactory, router } from "./trpc";
import { hostRouter } from "./routers/host";
import { vmRouter } from "./routers/vm";

export const appRouter = router({
  host: hostRouter,
  vm: vmRouter,
});

export type AppRouter = typeof appRouter;

/** Calls procedures without HTTP (tests, tools): `createCaller({daemon, authed: true, ws: null})`. */
export const createCaller = createCallerFactory(appRouter);

export type { VmSummary, VmState, VmExit } from "./vm";
export type { VmEvent } from "./event-bus";
export type { ConsoleChunk } from "./routers/vm";
export type { HostInfo } from "./host-info";
export type { VmConfigInput } from "./vm-input";
