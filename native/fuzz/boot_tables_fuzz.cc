// What the VMM writes into the guest before it starts, fed random
// configurations: ACPI tables (arch/x86_64/acpi), the MP table, the e820
// map, the command line, Linux's zero page and PVH's hvm_start_info.
// Each either writes its structure or refuses with a VmmError; nothing
// else may happen (a write outside its structure is caught by ASan when
// it leaves guest RAM, and by the checks below when it stays inside).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <cstring>

#include "arch/x86_64/acpi/tables.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "common/error.h"
#include "seeds.h"

namespace {

using namespace virga;

// Small RAM, and RAM split around a hole so some of it lies above 4 GiB.
const GuestMemory& Memory(bool high) {
  static GuestMemory* low = new GuestMemory(32 << 20, x86::kMmioHoleStart);
  static GuestMemory* split = new GuestMemory(96 << 20, 64 << 20);
  return high ? *split : *low;
}

uint8_t Sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "%s\n", what);
    std::abort();
  }
}

fuzz::Seeds MakeSeeds() {
  // Consumed from the end: sockets-1, cores-1, threads-1, cpus, slots, ...
  return {{"one-cpu", {0, 0, 0, 0, 0, 0, 0, 0}},
          {"two-sockets", std::vector<uint8_t>(64, 1)},
          {"many", std::vector<uint8_t>(512, 0x7f)}};
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  x86::CpuTopology topology{in.ConsumeIntegralInRange<uint32_t>(1, 4), in.ConsumeIntegralInRange<uint32_t>(1, 64),
                            in.ConsumeIntegralInRange<uint32_t>(1, 4)};
  uint32_t max_cpus = topology.sockets * topology.cores * topology.threads;
  uint32_t cpus = in.ConsumeIntegralInRange<uint32_t>(1, max_cpus);
  acpi::AcpiLayout layout{};
  for (uint32_t i = 0; i < max_cpus; ++i) layout.possible_apic_ids.push_back(x86::ApicIdFor(topology, i));
  layout.apic_ids.assign(layout.possible_apic_ids.begin(), layout.possible_apic_ids.begin() + cpus);
  layout.ioapic_id = in.ConsumeBool() ? layout.possible_apic_ids.back() + 1 : in.ConsumeIntegral<uint32_t>();
  uint32_t slots = in.ConsumeIntegralInRange<uint32_t>(0, 16);
  for (uint32_t i = 0; i < slots; ++i) {
    layout.virtio_slots.push_back(
        {in.ConsumeIntegral<uint64_t>(), in.ConsumeIntegral<uint64_t>(), in.ConsumeIntegral<uint32_t>()});
  }
  layout.power_button_gsi = in.ConsumeIntegral<uint32_t>();
  const GuestMemory& memory = Memory(in.ConsumeBool());

  uint64_t rsdp = 0;
  try {
    rsdp = acpi::WriteAcpiTables(memory, layout);
    const uint8_t* table = memory.Translate(rsdp, 36);
    Check(table != nullptr && Sum(table, 20) == 0 && Sum(table, 36) == 0, "RSDP checksum");
  } catch (const VmmError&) {
  }
  try {
    x86::WriteMpTable(memory, layout.apic_ids, layout.ioapic_id);
  } catch (const VmmError&) {
  }
  std::vector<x86::E820Entry> e820 = x86::BuildE820(memory);
  uint64_t ram = 0;
  for (const auto& entry : e820) ram += entry.type == x86::kE820Ram ? entry.size : 0;
  Check(ram <= memory.size(), "e820 lists more RAM than there is");

  x86::LoadedKernel kernel;
  kernel.is_bzimage = in.ConsumeBool();
  kernel.entry64 = in.ConsumeIntegral<uint64_t>();
  kernel.pvh_entry = in.ConsumeIntegral<uint64_t>();
  kernel.end = in.ConsumeIntegral<uint64_t>();
  // The loader takes 0x1f1 up to 0x202 + the byte at 0x201 from a bzImage.
  kernel.setup_header = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 0x202 + 0xff - 0x1f1));
  x86::InitrdPlacement initrd{in.ConsumeIntegral<uint64_t>(), in.ConsumeIntegral<uint64_t>()};
  std::string cmdline = in.ConsumeRandomLengthString(8192);
  try {
    x86::WriteCmdline(memory, cmdline);
    Check(std::strlen(reinterpret_cast<const char*>(memory.Translate(x86::kCmdlineAddr, 1))) <= cmdline.size(),
          "command line not terminated");
  } catch (const VmmError&) {
  }
  try {
    x86::WriteBootParams(memory, kernel, cmdline, initrd, e820, rsdp);
  } catch (const VmmError&) {
  }
  try {
    x86::WritePvhStartInfo(memory, initrd, e820, rsdp);
  } catch (const VmmError&) {
  }
  return 0;
}
