// VmConfig → virga-vmm flags, so the host daemon can start a VM from a stored
// config. The inverse of virga-vmm's own parser (native/src/cli/): every
// value is written explicitly, so `virga-vmm <toArgv(c)> -print-config`
// prints c back (config/to-argv.test.ts checks that against the binary).
import { DEFAULT_QMP_RATE_LIMIT, type Device, type VmConfig } from "./vm-config";

const MIB = 1024 * 1024;

/** A literal comma inside an option value is written ",," (QEMU's rule). */
function escape(value: string): string {
  return value.replaceAll(",", ",,");
}

function onOff(value: boolean): string {
  return value ? "on" : "off";
}

function memory(bytes: number): string {
  return bytes % (1024 * MIB) === 0 ? `${bytes / (1024 * MIB)}G` : `${bytes / MIB}M`;
}

function serial(value: VmConfig["serial"]): string {
  switch (value.kind) {
    case "file":
      return `file,path=${escape(value.path)}`;
    case "socket":
      return `socket,path=${escape(value.path)},server,nowait`;
    default:
      return value.kind;
  }
}

function qmp(value: NonNullable<VmConfig["qmp"]>): string {
  const address =
    value.kind === "unix"
      ? `unix:${escape(value.path)}`
      : `tcp:${value.host.includes(":") ? `[${value.host}]` : value.host}:${value.port}`;
  const limit = value.rateLimit === DEFAULT_QMP_RATE_LIMIT ? "" : `,rate-limit=${value.rateLimit}`;
  return `${address},server,nowait${limit}`;
}

function deviceArg(d: Device): string {
  const slot = "slot" in d && d.slot !== undefined ? `,addr=${d.slot}` : "";
  const place = "bus" in d ? `,bus=${escape(d.bus)},addr=${d.addr}` : "";
  switch (d.driver) {
    case "virtio-blk-pci":
      return `${d.driver},drive=${escape(d.drive)},id=${escape(d.id)}${place}`;
    case "virtio-net-pci":
      return `${d.driver},netdev=${escape(d.netdev)},id=${escape(d.id)}${d.mac === undefined ? "" : `,mac=${d.mac}`}${place}`;
    case "virtio-balloon-pci":
      return `${d.driver},id=${escape(d.id)}${place},deflate-on-oom=${onOff(d.deflateOnOom)},free-page-reporting=${onOff(d.freePageReporting)}`;
    case "pcie-root-port":
      return `${d.driver},id=${escape(d.id)},port=${d.port}${place}${d.multifunction ? ",multifunction=on" : ""}${d.chassis === undefined ? "" : `,chassis=${d.chassis}`}`;
    case "virtio-blk-device":
      return `${d.driver},drive=${escape(d.drive)},id=${escape(d.id)}${slot}`;
    case "virtio-net-device":
      return `${d.driver},netdev=${escape(d.netdev)},id=${escape(d.id)}${d.mac === undefined ? "" : `,mac=${d.mac}`}${slot}`;
    case "vfio-pci":
      return `${d.driver},${d.host === undefined ? `sysfsdev=${escape(d.sysfsdev ?? "")}` : `host=${d.host}`},id=${escape(d.id)}${place}`;
    case "virtio-balloon-device":
      return `${d.driver},id=${escape(d.id)},deflate-on-oom=${onOff(d.deflateOnOom)},free-page-reporting=${onOff(d.freePageReporting)}`;
  }
}

export function toArgv(config: VmConfig): string[] {
  const argv: string[] = [];
  // -name strips one "guest=" prefix, so a name that starts with it gets another.
  if (config.name !== undefined)
    argv.push("-name", config.name.startsWith("guest=") ? `guest=${config.name}` : config.name);
  argv.push("-machine", config.machine, "-kernel", config.kernel);
  if (config.initrd !== undefined) argv.push("-initrd", config.initrd);
  argv.push("-append", config.append);
  argv.push("-boot-entry", config.bootEntry);
  const { smp } = config;
  argv.push(
    "-smp",
    `cpus=${smp.cpus},maxcpus=${smp.maxCpus},sockets=${smp.sockets},cores=${smp.cores},threads=${smp.threads}`,
  );
  argv.push("-m", memory(config.memoryBytes));
  if (config.memShare === true) argv.push("-mem-share");
  if (config.memPath !== undefined) argv.push("-mem-path", config.memPath);
  for (const d of config.drives) {
    argv.push(
      "-drive",
      `file=${escape(d.file)},id=${escape(d.id)},readonly=${onOff(d.readOnly)},direct=${onOff(d.direct)}`,
    );
  }
  for (const n of config.netdevs) {
    argv.push(
      "-netdev",
      `tap,id=${escape(n.id)},${"fd" in n ? `fd=${n.fd}` : `ifname=${escape(n.ifname)}`}`,
    );
  }
  for (const d of config.devices) argv.push("-device", deviceArg(d));
  argv.push("-serial", serial(config.serial));
  if (config.qmp !== undefined) argv.push("-qmp", qmp(config.qmp));
  if (config.logFile !== undefined) {
    argv.push("-D");
    if (config.logFile !== null) argv.push(config.logFile);
  }
  if (config.daemonize) argv.push("-daemonize");
  if (config.pidfile !== undefined) argv.push("-pidfile", config.pidfile);
  if (config.startPaused) argv.push("-S");
  if (config.incoming !== undefined) argv.push("-incoming", config.incoming);
  return argv;
}
