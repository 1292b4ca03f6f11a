// The balloon (docs/devices.md): balloon and query-balloon as the seed and
// QEMU shape them, and virga-query-balloon with the guest's memory figures.
import { z } from "zod";
import { defineCommand } from "../command";

export const balloon = defineCommand({
  name: "balloon",
  args: z.object({ value: z.number().int().positive() }).strict(),
  async handler(args, { vm }) {
    await vm.balloon(args.value);
    return {};
  },
});

export const queryBalloon = defineCommand({
  name: "query-balloon",
  args: z.object({}).strict(),
  async handler(_args, { vm }) {
    const info = await vm.queryBalloon();
    return { actual: info.actual };
  },
});

export const virgaQueryBalloon = defineCommand({
  name: "virga-query-balloon",
  args: z.object({}).strict(),
  handler: (_args, { vm }) => vm.queryBalloon(),
});
