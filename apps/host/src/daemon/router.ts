// virgad's tRPC router. The portal imports `AppRouter` as a type only.
import { createCallerFactory, mergeRouters, router } from "./trpc";
import { deviceRouter } from "./routers/devices";
import { hostRouter } from "./routers/host";
import { imageRouter } from "./routers/image";
import { incomingRouter, vmMigrationRouter } from "./routers/migration";
import { cloneRouter, templateRouter } from "./routers/templates";
import { vmRouter } from "./routers/vm";

export const appRouter = router({
  host: hostRouter,
  /** Lifecycle, QMP, console (routers/vm.ts), devices (routers/devices.ts), snapshot and clone (routers/templates.ts), live migration (routers/migration.ts), one namespace. */
  vm: mergeRouters(vmRouter, deviceRouter, cloneRouter, vmMigrationRouter),
  /** What a source virgad asks of its destination during a live migration. */
  migration: incomingRouter,
  image: imageRouter,
  template: templateRouter,
});

export type AppRouter = typeof appRouter;

/** Calls procedures without HTTP (tests, tools): `createCaller({daemon, scope: "full", ws: null})`. */
export const createCaller = createCallerFactory(appRouter);

export type { VmSummary, VmState, VmExit } from "./vm";
export type { VmEvent } from "./event-bus";
export type { ConsoleChunk } from "./routers/vm";
export type { HostInfo } from "./host-info";
export type { ImageFile } from "./images";
export type { HostPci, HostPciDevice } from "./host-pci";
export type { PciFunction, RootPortSlot } from "./pci-devices";
export type { Balloon, BalloonSlot, DiskSlot, NicCounters, NicSlot, VmDevices } from "./devices";
export type { VmConfigInput } from "./vm-input";
export type { TemplateDisk, TemplateInfo, TemplateNic, TemplateSizes } from "./templates";
export type { CloneOverrides, CloneReport, CloneResult } from "./clones";
export type { MigrationInfo, MigrationStats, MigrationStatus } from "./migration";
export type { MigrationMark } from "./vm";
