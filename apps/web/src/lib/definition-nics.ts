// A definition's NICs: each on an existing tap or on a bridge, where virgad
// makes a tap of its own when it creates the VM. Kept beside the VmConfig
// (VmDefinition.nics) because a VmConfig is virga-vmm's command line, which
// has taps but no bridges. The fields are virgad's own (vm.attachNic), so
// both name a bad one the same way; shared by the definition form and the
// server.
import { hasOneBackend, nicSpec } from "@virga/host/src/daemon/routers/devices.schema";
import type { z } from "zod";
import { NET_SLOTS, type VmConfig } from "./vm-config";

// Built with the schema's own methods: nicSpec comes from apps/host, whose zod
// is the CommonJS build on the server, and one schema keeps to one build.
export const definitionNicSchema = nicSpec.strict().superRefine((nic, ctx) => {
  if (!hasOneBackend(nic)) {
    ctx.addIssue({
      code: "custom",
      path: [nic.tap === undefined ? "bridge" : "tap"],
      message: "give either a tap or a bridge",
    });
  }
});
export type DefinitionNic = z.infer<typeof definitionNicSchema>;

export const definitionNicsSchema = definitionNicSchema.array();

/**
 * The places left for `nics`: on the microvm the NIC slots the config's own
 * virtio-net devices leave, on q35 the root ports no device of the config is in.
 */
export function nicSlotsLeft(config: Pick<VmConfig, "machine" | "devices">): number {
  if (config.machine === "q35") {
    const used = new Set(config.devices.map((d) => ("bus" in d ? d.bus : "")));
    return config.devices.filter((d) => d.driver === "pcie-root-port" && !used.has(d.id)).length;
  }
  return NET_SLOTS - config.devices.filter((d) => d.driver === "virtio-net-device").length;
}

/** Why a definition cannot have more NICs, for the error that says how many it may have. */
export function nicPlaces(config: Pick<VmConfig, "machine">): string {
  return config.machine === "q35"
    ? "a q35 VM's NICs go into its free root ports"
    : `the microvm has ${NET_SLOTS} NIC slots`;
}
