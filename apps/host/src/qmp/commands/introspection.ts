// What QEMU-style clients ask first: versions, commands, events, target,
// KVM, machines, character devices.
import { z } from "zod";
import { MAX_VCPUS } from "../../config/vm-config";
import { defineCommand } from "../command";
import { QMP_VERSION } from "../wire";

const none = z.object({}).strict();

/** Every event virga-vmm can emit so far. */
export const EVENT_NAMES = [
  "SHUTDOWN",
  "STOP",
  "RESUME",
  "RESET",
  "POWERDOWN",
  "DEVICE_DELETED",
  "BALLOON_CHANGED",
  "MIGRATION",
] as const;

export const queryVersion = defineCommand({
  name: "query-version",
  args: none,
  handler: () => QMP_VERSION,
});

export const queryCommands = defineCommand({
  name: "query-commands",
  args: none,
  handler: (_args, { commandNames }) => commandNames.map((name) => ({ name })),
});

export const queryEvents = defineCommand({
  name: "query-events",
  args: none,
  handler: () => EVENT_NAMES.map((name) => ({ name })),
});

export const queryTarget = defineCommand({
  name: "query-target",
  args: none,
  handler: () => ({ arch: "x86_64" }),
});

/** A virga-vmm process exists only once its VM was created on KVM. */
export const queryKvm = defineCommand({
  name: "query-kvm",
  args: none,
  handler: () => ({ enabled: true, present: true }),
});

export const queryMachines = defineCommand({
  name: "query-machines",
  args: none,
  handler: () => [
    {
      name: "microvm",
      "is-default": true,
      "cpu-max": MAX_VCPUS,
      "hotpluggable-cpus": false,
      "numa-mem-supported": false,
      deprecated: false,
      "default-cpu-type": "host-x86-cpu",
      "default-ram-id": "microvm.ram",
      acpi: false,
    },
  ],
});

export const queryChardev = defineCommand({
  name: "query-chardev",
  args: none,
  handler: (_args, { vm }) =>
    vm.chardevs().map((c) => ({
      label: c.label,
      filename: c.filename,
      "frontend-open": c.frontendOpen,
    })),
});
