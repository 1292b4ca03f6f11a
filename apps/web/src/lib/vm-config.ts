// The VM description schema, shared with virga-vmm and virgad: the portal's
// definition form and its server both validate with exactly this.
export {
  BLOCK_SLOTS,
  MAC_PATTERN,
  MAX_MEMORY_BYTES,
  MAX_VCPUS,
  MIB,
  MIN_MEMORY_BYTES,
  NET_SLOTS,
  vmConfigSchema,
  type BalloonDevice,
  type VmConfig,
} from "@virga/host/src/config/vm-config";
