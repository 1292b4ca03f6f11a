// Pauses and resumes a running vCPU many times under ThreadSanitizer, so a
// field the requesting thread and the vCPU thread both write without
// atomics (kvm_run.immediate_exit: set by Kick, cleared after each
// KVM_RUN) is reported as a data race. The guest loops on an OUT to port
// 0x80, so the vCPU thread returns from KVM_RUN, and clears the flag,
// thousands of times a second. Needs /dev/kvm; exits 0 when the guest ran
// and ThreadSanitizer saw nothing (it exits 66 when it reports).
#include <cstdio>
#include <memory>

#include "arch/x86_64/boot_cpu.h"
#include "arch/x86_64/cpuid.h"
#include "devices/bus.h"
#include "kvm/system.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"
#include "vcpu/vcpu_thread.h"

int main() {
  using namespace virga;
  kvm::System system = kvm::System::Open();
  kvm::Vm vm(system);
  GuestMemory memory(4 << 20, 1ULL << 32);
  for (const MemoryRegion& region : memory.regions()) {
    vm.SetUserMemoryRegion(region.slot, region.guest_base, region.size, region.host, 0);
  }
  x86::WriteBootTables(memory);
  constexpr uint64_t kCode = 0x100000;
  const uint8_t loop[] = {0xe6, 0x80, 0xeb, 0xfc};  // out %al, $0x80; jmp back to it
  memory.Write(kCode, loop, sizeof(loop));

  auto vcpu = std::make_unique<kvm::Vcpu>(vm.CreateVcpuFd(0), system.VcpuMmapSize());
  vcpu->SetCpuid(x86::CpuidForVcpu(system.SupportedCpuid(), {1, 1, 1}, 0));
  x86::SetupVcpuMsrsAndFpu(*vcpu);
  x86::SetupBootCpu(*vcpu, x86::BootEntry::kLinux64, kCode);

  Bus pio, mmio;
  bool ended = false;
  VcpuThread::InstallKickHandler();
  VcpuThread thread(0, std::move(vcpu), &pio, &mmio, [&ended](const ExitReason& reason) {
    std::fprintf(stderr, "the guest stopped: %s\n", reason.message.c_str());
    ended = true;
  });
  thread.Start(false);
  for (int i = 0; i < 300; ++i) {
    thread.Pause();
    thread.Resume();
  }
  uint64_t exits = thread.run_stats().io_exits;
  thread.Stop();
  std::printf("%llu port exits\n", static_cast<unsigned long long>(exits));
  return ended || exits == 0 ? 1 : 0;
}
