// query-stats / query-stats-schemas in QEMU's shape, for the vCPUs' run
// loops: how often KVM_RUN returned to virga-vmm and why, and where each
// vCPU thread's time went. The provider is "virga", not QEMU's "kvm": these
// are counted by the VMM around KVM_RUN, while QEMU's "kvm" figures come from
// the kernel and also count exits the kernel handled itself.
import { z } from "zod";
import type { VcpuState } from "../../vmm/control";
import { qomPath } from "../../vmm/topology";
import { defineCommand } from "../command";
import { genericError } from "../wire";

const PROVIDER = "virga";

interface StatSchema {
  name: string;
  type: "cumulative" | "instant";
  unit?: "seconds";
  base?: number;
  exponent?: number;
  readonly read: (stats: VcpuState["stats"]) => number;
}

const nanoseconds = { unit: "seconds", base: 10, exponent: -9 } as const;

const VCPU_STATS: readonly StatSchema[] = [
  { name: "exits", type: "cumulative", read: (s) => s.exits },
  { name: "io_exits", type: "cumulative", read: (s) => s.ioExits },
  { name: "mmio_exits", type: "cumulative", read: (s) => s.mmioExits },
  { name: "signal_exits", type: "cumulative", read: (s) => s.signalExits },
  // Inside KVM_RUN: guest code, the kernel's own exit handling, and halts.
  { name: "run_ns", type: "cumulative", ...nanoseconds, read: (s) => s.runNs },
  { name: "exit_handling_ns", type: "cumulative", ...nanoseconds, read: (s) => s.exitHandlingNs },
  {
    name: "start_to_first_entry_ns",
    type: "instant",
    ...nanoseconds,
    read: (s) => s.startToFirstEntryNs,
  },
];
const STAT_NAMES = VCPU_STATS.map((stat) => stat.name);

const provider = z.literal(PROVIDER);

const queryStatsArgs = z
  .object({
    target: z.enum(["vm", "vcpu", "cryptodev"]),
    vcpus: z.array(z.string()).optional(),
    providers: z
      .array(z.object({ provider, names: z.array(z.string()).optional() }).strict())
      .optional(),
  })
  .strict();

function wantedNames(providers: { names?: string[] }[] | undefined): Set<string> {
  if (providers === undefined) return new Set(STAT_NAMES);
  const names = new Set<string>();
  for (const entry of providers) {
    for (const name of entry.names ?? STAT_NAMES) {
      if (!STAT_NAMES.includes(name)) {
        throw genericError(
          `Parameter 'providers.names' has no statistic '${name}'; expected one of ${STAT_NAMES.join(", ")}`,
        );
      }
      names.add(name);
    }
  }
  return names;
}

export const queryStats = defineCommand({
  name: "query-stats",
  args: queryStatsArgs,
  async handler(args, { vm }) {
    const names = wantedNames(args.providers);
    // virga-vmm keeps statistics for vCPUs only; other targets have none.
    if (args.target !== "vcpu") return [];
    const vcpus = await vm.vcpus();
    const byPath = new Map(vcpus.map((cpu) => [qomPath(cpu.index), cpu]));
    const chosen =
      args.vcpus === undefined
        ? vcpus
        : args.vcpus.map((path) => {
            const cpu = byPath.get(path);
            if (cpu === undefined) {
              throw genericError(
                `Parameter 'vcpus' names no online vCPU '${path}'; expected one of ${[...byPath.keys()].join(", ")}`,
              );
            }
            return cpu;
          });
    return chosen.map((cpu) => ({
      provider: PROVIDER,
      "qom-path": qomPath(cpu.index),
      stats: VCPU_STATS.filter((stat) => names.has(stat.name)).map((stat) => ({
        name: stat.name,
        value: stat.read(cpu.stats),
      })),
    }));
  },
});

export const queryStatsSchemas = defineCommand({
  name: "query-stats-schemas",
  args: z.object({ provider: provider.optional() }).strict(),
  handler() {
    return [
      {
        provider: PROVIDER,
        target: "vcpu",
        stats: VCPU_STATS.map(({ read: _read, ...schema }) => schema),
      },
    ];
  },
});
