// VmConfig → virga-vmm flags: the inverse of cli/command-line.ts, so the host
// daemon can start a VM from a stored config. Normalised: every value is
// written explicitly, so parse(toArgv(c)) equals c.
import { append } from "../cli/flags/append";
import * as bootEntry from "../cli/flags/boot-entry";
import * as device from "../cli/flags/device";
import * as drive from "../cli/flags/drive";
import * as memory from "../cli/flags/memory";
import * as name from "../cli/flags/name";
import * as qmp from "../cli/flags/qmp";
import * as serial from "../cli/flags/serial";
import * as smp from "../cli/flags/smp";
import type { VmConfig } from "./vm-config";

export function toArgv(config: VmConfig): string[] {
  const argv: string[] = [];
  if (config.name !== undefined) argv.push(name.flag, name.format(config.name));
  argv.push("-machine", config.machine, "-kernel", config.kernel);
  if (config.initrd !== undefined) argv.push("-initrd", config.initrd);
  argv.push(append.flag, config.append);
  argv.push(bootEntry.flag, bootEntry.format(config.bootEntry));
  argv.push(smp.flag, smp.format(config.smp));
  argv.push(memory.flag, memory.format(config.memoryBytes));
  for (const d of config.drives) argv.push(drive.flag, drive.format(d));
  for (const d of config.devices) argv.push(device.flag, device.format(d));
  argv.push(serial.flag, serial.format(config.serial));
  if (config.qmp !== undefined) argv.push(qmp.flag, qmp.format(config.qmp));
  if (config.logFile !== undefined) {
    argv.push("-D");
    if (config.logFile !== null) argv.push(config.logFile);
  }
  if (config.daemonize) argv.push("-daemonize");
  if (config.pidfile !== undefined) argv.push("-pidfile", config.pidfile);
  if (config.startPaused) argv.push("-S");
  return argv;
}
