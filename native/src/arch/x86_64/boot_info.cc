#include "arch/x86_64/boot_info.h"

#include <cstring>

#include "arch/x86_64/layout.h"
#include "common/error.h"

namespace virga::x86 {

namespace {

// Offsets in Linux's struct boot_params (Documentation/arch/x86/zero-page.rst).
constexpr uint64_t kBpAcpiRsdpAddr = 0x070;
constexpr uint64_t kBpExtRamdiskImage = 0x0c0;
constexpr uint64_t kBpExtRamdiskSize = 0x0c4;
constexpr uint64_t kBpExtCmdLinePtr = 0x0c8;
constexpr uint64_t kBpE820Entries = 0x1e8;
constexpr uint64_t kBpSetupHeader = 0x1f1;
constexpr uint64_t kBpBootFlag = 0x1fe;
constexpr uint64_t kBpHeaderMagic = 0x202;
constexpr uint64_t kBpVersion = 0x206;
constexpr uint64_t kBpTypeOfLoader = 0x210;
constexpr uint64_t kBpLoadflags = 0x211;
constexpr uint64_t kBpRamdiskImage = 0x218;
constexpr uint64_t kBpRamdiskSize = 0x21c;
constexpr uint64_t kBpHeapEndPtr = 0x224;
constexpr uint64_t kBpCmdLinePtr = 0x228;
constexpr uint64_t kBpKernelAlignment = 0x230;
constexpr uint64_t kBpCmdlineSize = 0x238;
constexpr uint64_t kBpE820Table = 0x2d0;
constexpr unsigned kE820MaxEntries = 128;
constexpr uint64_t kZeroPageSize = 4096;

constexpr uint8_t kLoadedHigh = 1 << 0;
constexpr uint8_t kCanUseHeap = 1 << 7;

// hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h), version 1.
constexpr uint32_t kHvmStartMagic = 0x336ec578;
struct __attribute__((packed)) HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
struct __attribute__((packed)) HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
struct __attribute__((packed)) HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

template <typename T>
void Put(uint8_t* page, uint64_t offset, T value) {
  std::memcpy(page + offset, &value, sizeof(T));
}

}  // namespace

std::vector<E820Entry> BuildE820(const GuestMemory& memory) {
  std::vector<E820Entry> map;
  map.push_back({0, kReservedLowStart, kE820Ram});
  // Holds the MP table; kernels must not reuse it.
  map.push_back({kReservedLowStart, kLowRamEnd - kReservedLowStart, kE820Reserved});
  for (const auto& region : memory.regions()) {
    uint64_t start = region.guest_base < kHighMemStart ? kHighMemStart : region.guest_base;
    uint64_t end = region.guest_base + region.size;
    if (end > start) map.push_back({start, end - start, kE820Ram});
  }
  return map;
}

void WriteCmdline(const GuestMemory& memory, const std::string& cmdline) {
  if (cmdline.size() + 1 > kCmdlineMax) {
    throw VmmError("kernel command line is " + std::to_string(cmdline.size()) + " bytes; the limit is " +
                   std::to_string(kCmdlineMax - 1));
  }
  if (!memory.Write(kCmdlineAddr, cmdline.c_str(), cmdline.size() + 1)) {
    throw VmmError("guest memory too small for the command line");
  }
}

void WriteBootParams(const GuestMemory& memory, const LoadedKernel& kernel, const std::string& cmdline,
                     const InitrdPlacement& initrd, const std::vector<E820Entry>& e820, uint64_t rsdp) {
  uint8_t* page = memory.Translate(kZeroPageAddr, kZeroPageSize);
  if (page == nullptr) throw VmmError("guest memory too small for the zero page");
  std::memset(page, 0, kZeroPageSize);
  if (kernel.is_bzimage) {
    // The header ends where the byte at 0x201 says (at most 0x301): it
    // always fits the zero page, but a bigger one must not run off it.
    if (kernel.setup_header.size() > kZeroPageSize - kBpSetupHeader) throw VmmError("bzImage setup header too long");
    if (!kernel.setup_header.empty()) {
      std::memcpy(page + kBpSetupHeader, kernel.setup_header.data(), kernel.setup_header.size());
    }
  } else {
    // An ELF vmlinux has no setup header: write the fields the kernel checks.
    Put<uint16_t>(page, kBpBootFlag, 0xaa55);
    Put<uint32_t>(page, kBpHeaderMagic, 0x53726448);
    Put<uint16_t>(page, kBpVersion, 0x020f);
    Put<uint32_t>(page, kBpKernelAlignment, 0x1000000);
  }
  Put<uint64_t>(page, kBpAcpiRsdpAddr, rsdp);
  Put<uint8_t>(page, kBpTypeOfLoader, 0xff);  // "undefined" boot loader id
  page[kBpLoadflags] |= kLoadedHigh | kCanUseHeap;
  Put<uint16_t>(page, kBpHeapEndPtr, 0xfe00);
  Put<uint32_t>(page, kBpCmdLinePtr, static_cast<uint32_t>(kCmdlineAddr));
  Put<uint32_t>(page, kBpExtCmdLinePtr, static_cast<uint32_t>(kCmdlineAddr >> 32));
  Put<uint32_t>(page, kBpCmdlineSize, static_cast<uint32_t>(cmdline.size()));
  Put<uint32_t>(page, kBpRamdiskImage, static_cast<uint32_t>(initrd.address));
  Put<uint32_t>(page, kBpRamdiskSize, static_cast<uint32_t>(initrd.size));
  Put<uint32_t>(page, kBpExtRamdiskImage, static_cast<uint32_t>(initrd.address >> 32));
  Put<uint32_t>(page, kBpExtRamdiskSize, static_cast<uint32_t>(initrd.size >> 32));
  if (e820.size() > kE820MaxEntries) throw VmmError("too many e820 entries");
  Put<uint8_t>(page, kBpE820Entries, static_cast<uint8_t>(e820.size()));
  for (size_t i = 0; i < e820.size(); ++i) {
    uint64_t at = kBpE820Table + i * 20;
    Put<uint64_t>(page, at, e820[i].address);
    Put<uint64_t>(page, at + 8, e820[i].size);
    Put<uint32_t>(page, at + 16, e820[i].type);
  }
}

void WritePvhStartInfo(const GuestMemory& memory, const InitrdPlacement& initrd,
                       const std::vector<E820Entry>& e820, uint64_t rsdp) {
  uint8_t* page = memory.Translate(kZeroPageAddr, kZeroPageSize);
  if (page == nullptr) throw VmmError("guest memory too small for hvm_start_info");
  std::memset(page, 0, kZeroPageSize);
  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = kCmdlineAddr;
  info.memmap_paddr = kPvhMemmapAddr;
  info.memmap_entries = static_cast<uint32_t>(e820.size());
  info.rsdp_paddr = rsdp;
  constexpr uint64_t kModlistAddr = kZeroPageAddr + 0x100;
  if (initrd.size != 0) {
    HvmModlistEntry module{initrd.address, initrd.size, 0, 0};
    std::memcpy(page + 0x100, &module, sizeof(module));
    info.nr_modules = 1;
    info.modlist_paddr = kModlistAddr;
  }
  std::memcpy(page, &info, sizeof(info));
  for (size_t i = 0; i < e820.size(); ++i) {
    HvmMemmapEntry entry{e820[i].address, e820[i].size, e820[i].type, 0};
    if (!memory.WriteObj(kPvhMemmapAddr + i * sizeof(entry), entry)) throw VmmError("PVH memory map does not fit");
  }
}

}  // namespace virga::x86
