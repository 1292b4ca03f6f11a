// The guests this repository builds, offered as ready definitions on start:
// the probe guest (boots on any KVM, including these machines' PVM) and the
// Debian Linux guest (needs hardware virtualisation, GUESTS.md). Both have a
// balloon, so the VM page's memory panel works on them; neither has a NIC,
// since no tap or bridge can be assumed on a host.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repositoryRoot } from "@virga/prisma";
import { MIB, type BalloonDevice, type VmConfig } from "@/lib/vm-config";
import { db, isUniqueViolation } from "../db";

interface BuiltIn {
  name: string;
  description: string;
  files: string[];
  config: VmConfig;
}

function balloon(guestReportsFreePages: boolean): BalloonDevice {
  return {
    driver: "virtio-balloon-device",
    id: "balloon0",
    deflateOnOom: guestReportsFreePages,
    freePageReporting: guestReportsFreePages,
  };
}

function builtIns(root: string): BuiltIn[] {
  const probe = join(root, "native", "probe-guest", "build", "probe.elf");
  const linux = join(root, "build", "guests", "linux");
  const common = {
    machine: "microvm" as const,
    drives: [],
    netdevs: [],
    devices: [],
    serial: { kind: "stdio" as const },
    daemonize: false,
    startPaused: false,
  };
  return [
    {
      name: "probe-guest",
      description:
        "Virga's probe kernel: boot log, SMP, virtio and a small shell on the serial console. Runs on any KVM.",
      files: [probe],
      config: {
        ...common,
        name: "probe-guest",
        kernel: probe,
        append: "console=ttyS0",
        bootEntry: "linux64",
        smp: { cpus: 2, maxCpus: 2, sockets: 1, cores: 2, threads: 1 },
        memoryBytes: 128 * MIB,
        // The probe guest's driver inflates and deflates and reports statistics only.
        devices: [balloon(false)],
      },
    },
    {
      name: "debian-linux",
      description:
        "Debian's 6.1 kernel with a busybox initramfs. Needs hardware virtualisation (VT-x/SVM).",
      files: [join(linux, "bzImage"), join(linux, "initramfs.cpio.gz")],
      config: {
        ...common,
        name: "debian-linux",
        kernel: join(linux, "bzImage"),
        initrd: join(linux, "initramfs.cpio.gz"),
        append: "console=ttyS0 reboot=k panic=1",
        bootEntry: "linux64",
        smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
        memoryBytes: 256 * MIB,
        devices: [balloon(true)],
      },
    },
  ];
}

/** Creates the built-in definitions whose images exist and that are missing. */
export async function seedBuiltInDefinitions(root = repositoryRoot()): Promise<string[]> {
  const added: string[] = [];
  for (const builtIn of builtIns(root)) {
    if (!builtIn.files.every((file) => existsSync(file))) continue;
    const existing = await db().vmDefinition.findUnique({ where: { name: builtIn.name } });
    if (existing !== null) continue;
    try {
      await db().vmDefinition.create({
        data: {
          name: builtIn.name,
          description: builtIn.description,
          config: JSON.stringify(builtIn.config),
          builtIn: true,
        },
      });
    } catch (error) {
      // Another portal on the same database added it first.
      if (isUniqueViolation(error)) continue;
      throw error;
    }
    added.push(builtIn.name);
  }
  return added;
}
