// VmConfig → the native addon's NativeVmConfig (native/index.d.ts).
import type { NativeVmConfig } from "@virga/native";
import type { VmConfig } from "../config/vm-config";

export function toNativeConfig(config: VmConfig): NativeVmConfig {
  const drives = new Map(config.drives.map((d) => [d.id, d]));
  const native: NativeVmConfig = {
    memoryBytes: config.memoryBytes,
    cpus: config.smp.cpus,
    maxCpus: config.smp.maxCpus,
    sockets: config.smp.sockets,
    cores: config.smp.cores,
    threads: config.smp.threads,
    kernel: config.kernel,
    cmdline: config.append,
    bootEntry: config.bootEntry,
    serial: config.serial,
    // -device order is slot order: the first virtio-blk-device is vda.
    disks: config.devices.map((device, slot) => {
      const drive = drives.get(device.drive);
      if (drive === undefined)
        throw new Error(`device ${device.id}: unknown drive ${device.drive}`);
      return {
        slot,
        id: device.id,
        path: drive.file,
        readOnly: drive.readOnly,
        direct: drive.direct,
      };
    }),
  };
  if (config.initrd !== undefined) native.initrd = config.initrd;
  return native;
}
