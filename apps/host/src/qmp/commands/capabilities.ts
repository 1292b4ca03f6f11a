// qmp_capabilities: accepted, optional (QMP.md); no capability is offered.
import { z } from "zod";
import { defineCommand } from "../command";
import { genericError } from "../wire";

export const qmpCapabilities = defineCommand({
  name: "qmp_capabilities",
  args: z.object({ enable: z.array(z.string()).optional() }).strict(),
  handler(args) {
    const wanted = args.enable?.[0];
    if (wanted !== undefined) throw genericError(`Capability '${wanted}' not available`);
    return {};
  },
});
