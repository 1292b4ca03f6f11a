// A definition's NICs: each on an existing tap or on a bridge, where virgad
// makes a tap of its own when it creates the VM. Kept beside the VmConfig
// (VmDefinition.nics) because a VmConfig is virga-vmm's command line, which
// has taps but no bridges. Shared by the definition form and the server.
import { z } from "zod";
import { IFNAME_PATTERN, MAC_PATTERN, NET_SLOTS, type VmConfig } from "./vm-config";

const ifname = z
  .string()
  .regex(IFNAME_PATTERN, "must be an interface name of 1-15 bytes without '/' or spaces");

export const definitionNicSchema = z
  .object({
    tap: ifname.optional(),
    bridge: ifname.optional(),
    mac: z
      .string()
      .regex(MAC_PATTERN, "must be a unicast MAC address like 52:54:00:12:34:56")
      .optional(),
  })
  .strict()
  .superRefine((nic, ctx) => {
    if ((nic.tap === undefined) === (nic.bridge === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [nic.tap === undefined ? "bridge" : "tap"],
        message: "give either a tap or a bridge",
      });
    }
  });
export type DefinitionNic = z.infer<typeof definitionNicSchema>;

export const definitionNicsSchema = z.array(definitionNicSchema);

/** The NIC slots left for `nics` once the config's own virtio-net devices have theirs. */
export function nicSlotsLeft(config: Pick<VmConfig, "devices">): number {
  return NET_SLOTS - config.devices.filter((d) => d.driver === "virtio-net-device").length;
}
