// VFIO pass-through under virga-vmm, one level down: its own L1
// (run-in-l1.sh --machine q35-vfio: an emulated Intel IOMMU and QEMU's edu
// device), so the default L1 of the other Linux scenarios is unchanged.
import { describeL1Suite } from "./l1-suite";
import { VFIO_SCENARIOS } from "./vfio-scenarios";

describeL1Suite(
  "VFIO pass-through to a Debian guest under virga-vmm (nested KVM, q35-vfio L1)",
  VFIO_SCENARIOS,
  {
    machine: "q35-vfio",
    set: "vfio",
  },
);
