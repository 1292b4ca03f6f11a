// vCPU queries: query-cpus (StratoVirt's shape, from the seed),
// query-cpus-fast (QEMU's shape), query-hotpluggable-cpus.
import { z } from "zod";
import { cpuProps, qomPath } from "../../vmm/topology";
import { defineCommand } from "../command";

const none = z.object({}).strict();

export const queryCpus = defineCommand({
  name: "query-cpus",
  args: none,
  async handler(_args, { vm }) {
    const smp = vm.config.smp;
    return (await vm.vcpus()).map((cpu) => ({
      CPU: cpu.index,
      arch: "x86",
      current: true,
      halted: cpu.halted,
      props: cpuProps(smp, cpu.index),
      qom_path: qomPath(cpu.index),
      thread_id: cpu.threadId,
    }));
  },
});

export const queryCpusFast = defineCommand({
  name: "query-cpus-fast",
  args: none,
  async handler(_args, { vm }) {
    const smp = vm.config.smp;
    return (await vm.vcpus()).map((cpu) => ({
      "cpu-index": cpu.index,
      "qom-path": qomPath(cpu.index),
      "thread-id": cpu.threadId,
      props: cpuProps(smp, cpu.index),
      target: "x86_64",
    }));
  },
});

/** Every possible vCPU (0..maxcpus-1); qom-path only on the online ones. */
export const queryHotpluggableCpus = defineCommand({
  name: "query-hotpluggable-cpus",
  args: none,
  async handler(_args, { vm }) {
    const smp = vm.config.smp;
    const online = new Set((await vm.vcpus()).map((cpu) => cpu.index));
    return Array.from({ length: smp.maxCpus }, (_, index) => ({
      props: cpuProps(smp, index),
      ...(online.has(index) ? { "qom-path": qomPath(index) } : {}),
      type: "host-x86-cpu",
      "vcpus-count": 1,
    }));
  },
});
