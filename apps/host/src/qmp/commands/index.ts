// The command table: every QMP command virga-vmm answers, listed by hand.
import type { QmpCommand } from "../command";
import { makeTable } from "../dispatch";
import { qmpCapabilities } from "./capabilities";
import { queryCpus, queryCpusFast, queryHotpluggableCpus } from "./cpus";
import {
  queryChardev,
  queryCommands,
  queryEvents,
  queryKvm,
  queryMachines,
  queryTarget,
  queryVersion,
} from "./introspection";
import { balloon, queryBalloon, virgaQueryBalloon } from "./balloon";
import {
  blockdevAdd,
  blockdevDel,
  deviceAdd,
  deviceDel,
  netdevAdd,
  netdevDel,
  virgaQueryDevices,
} from "./devices";
import { closefd, getfd } from "./fds";
import {
  migrate,
  migrateCancel,
  migrateSetParameters,
  queryMigrate,
  queryMigrateParameters,
} from "./migrate";
import { queryStats, queryStatsSchemas } from "./stats";
import { cont, queryStatus, quit, stop, systemPowerdown, systemReset } from "./status";

export const COMMANDS: readonly QmpCommand[] = [
  qmpCapabilities,
  queryStatus,
  stop,
  cont,
  quit,
  systemReset,
  systemPowerdown,
  queryCpus,
  queryCpusFast,
  queryHotpluggableCpus,
  queryStats,
  queryStatsSchemas,
  queryVersion,
  queryCommands,
  queryEvents,
  queryTarget,
  queryKvm,
  queryMachines,
  queryChardev,
  getfd,
  closefd,
  blockdevAdd,
  blockdevDel,
  netdevAdd,
  netdevDel,
  deviceAdd,
  deviceDel,
  virgaQueryDevices,
  balloon,
  queryBalloon,
  virgaQueryBalloon,
  migrate,
  queryMigrate,
  migrateCancel,
  migrateSetParameters,
  queryMigrateParameters,
];

export const COMMAND_TABLE = makeTable(COMMANDS);
