// Stock Debian Linux under virga-vmm. This machine's /dev/kvm (PVM) cannot
// run it, so one L1 machine with real KVM (test/nested/run-in-l1.sh) is
// booted for all scenarios (scenarios.ts), which run there and report back.
import { describeL1Suite } from "./l1-suite";
import { SCENARIOS } from "./scenarios";

describeL1Suite("Linux guests under virga-vmm (nested KVM)", SCENARIOS);
