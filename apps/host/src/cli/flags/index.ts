// Every flag virga-vmm accepts, in the order -help lists them.
import { append } from "./append";
import { bootEntry } from "./boot-entry";
import { daemonize } from "./daemonize";
import { deviceFlag } from "./device";
import { driveFlag } from "./drive";
import { initrd } from "./initrd";
import { kernel } from "./kernel";
import { logFile } from "./log-file";
import { machine } from "./machine";
import { memory } from "./memory";
import { nameFlag } from "./name";
import { pidfile } from "./pidfile";
import { qmpFlag } from "./qmp";
import { serialFlag } from "./serial";
import { smp } from "./smp";
import { startPaused } from "./start-paused";

export {
  append,
  bootEntry,
  daemonize,
  deviceFlag,
  driveFlag,
  initrd,
  kernel,
  logFile,
  machine,
  memory,
  nameFlag,
  pidfile,
  qmpFlag,
  serialFlag,
  smp,
  startPaused,
};

export const FLAGS = [
  machine,
  kernel,
  initrd,
  append,
  bootEntry,
  smp,
  memory,
  driveFlag,
  deviceFlag,
  serialFlag,
  qmpFlag,
  nameFlag,
  logFile,
  daemonize,
  pidfile,
  startPaused,
] as const;

export type AnyFlag = (typeof FLAGS)[number];

export const FLAGS_BY_NAME: ReadonlyMap<string, AnyFlag> = new Map(FLAGS.map((f) => [f.flag, f]));
