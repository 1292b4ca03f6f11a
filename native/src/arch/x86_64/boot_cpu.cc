#include "arch/x86_64/boot_cpu.h"

#include <cstring>

#include "arch/x86_64/layout.h"
#include "common/error.h"

namespace virga::x86 {

namespace {

// GDT slots: 0 null, 1 flat 32-bit code (PVH), 2 64-bit code (Linux's
// __BOOT_CS = 0x10), 3 flat data (__BOOT_DS = 0x18), 4 TSS.
constexpr uint16_t kCode32Selector = 0x08;
constexpr uint16_t kCode64Selector = 0x10;
constexpr uint16_t kDataSelector = 0x18;
constexpr uint16_t kTssSelector = 0x20;

constexpr uint64_t GdtEntry(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((static_cast<uint64_t>(base) & 0xff000000ULL) << (56 - 24)) |
         ((static_cast<uint64_t>(flags) & 0x0000f0ffULL) << 40) |
         ((static_cast<uint64_t>(limit) & 0x000f0000ULL) << (48 - 16)) |
         ((static_cast<uint64_t>(base) & 0x00ffffffULL) << 16) | (static_cast<uint64_t>(limit) & 0x0000ffffULL);
}

constexpr uint64_t kGdt[] = {
    0,
    GdtEntry(0xc09b, 0, 0xfffff),  // code32: present, DPL0, exec/read, accessed, 4K gran, 32-bit
    GdtEntry(0xa09b, 0, 0xfffff),  // code64: L bit set
    GdtEntry(0xc093, 0, 0xfffff),  // data: read/write, accessed
    GdtEntry(0x008b, 0, 0x67),     // 32-bit busy TSS, as PVH requires for TR
};

kvm_segment SegmentFromGdt(uint64_t entry, uint16_t selector) {
  kvm_segment seg{};
  seg.base = static_cast<uint32_t>(((entry >> 16) & 0xffffff) | (((entry >> 56) & 0xff) << 24));
  uint32_t limit = static_cast<uint32_t>((entry & 0xffff) | (((entry >> 48) & 0xf) << 16));
  seg.g = (entry >> 55) & 1;
  seg.limit = seg.g ? (limit << 12) | 0xfff : limit;
  seg.selector = selector;
  seg.type = (entry >> 40) & 0xf;
  seg.present = (entry >> 47) & 1;
  seg.dpl = (entry >> 45) & 3;
  seg.db = (entry >> 54) & 1;
  seg.s = (entry >> 44) & 1;
  seg.l = (entry >> 53) & 1;
  seg.avl = (entry >> 52) & 1;
  seg.unusable = seg.present ? 0 : 1;
  return seg;
}

constexpr uint64_t kCr0Pe = 1ULL << 0;
constexpr uint64_t kCr0Et = 1ULL << 4;
constexpr uint64_t kCr0Pg = 1ULL << 31;
constexpr uint64_t kCr4Pae = 1ULL << 5;
constexpr uint64_t kEferLme = 1ULL << 8;
constexpr uint64_t kEferLma = 1ULL << 10;

constexpr uint32_t kMsrIa32SysenterCs = 0x174;
constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
constexpr uint32_t kMsrIa32SysenterEip = 0x176;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrIa32Tsc = 0x10;
constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;

constexpr uint32_t kApicLvt0 = 0x350;
constexpr uint32_t kApicLvt1 = 0x360;
constexpr uint32_t kApicModeNmi = 0x4;
constexpr uint32_t kApicModeExtInt = 0x7;

}  // namespace

void WriteBootTables(const GuestMemory& memory) {
  if (!memory.Write(kGdtAddr, kGdt, sizeof(kGdt))) throw VmmError("guest memory too small for the GDT");
  if (!memory.WriteObj<uint64_t>(kIdtAddr, 0)) throw VmmError("guest memory too small for the IDT");
  // PML4[0] -> PDPT; PDPT[0..3] -> four PDs of 2 MiB pages: 4 GiB identity map,
  // so the kernel and anything the boot protocol points at is reachable.
  constexpr uint64_t kPresentWritable = 0x3;
  constexpr uint64_t kPageSize2M = 0x80;
  if (!memory.WriteObj<uint64_t>(kPml4Addr, kPdptAddr | kPresentWritable)) throw VmmError("no room for page tables");
  for (uint64_t i = 0; i < 4; ++i) {
    memory.WriteObj<uint64_t>(kPdptAddr + i * 8, (kPdAddr + i * 0x1000) | kPresentWritable);
  }
  for (uint64_t i = 0; i < 4 * 512; ++i) {
    memory.WriteObj<uint64_t>(kPdAddr + i * 8, (i << 21) | kPageSize2M | kPresentWritable);
  }
}

void SetupBootCpu(kvm::Vcpu& vcpu, BootEntry entry, uint64_t entry_address) {
  kvm_sregs sregs = vcpu.GetSregs();
  sregs.gdt.base = kGdtAddr;
  sregs.gdt.limit = sizeof(kGdt) - 1;
  sregs.idt.base = kIdtAddr;
  sregs.idt.limit = 7;
  kvm_segment data = SegmentFromGdt(kGdt[kDataSelector / 8], kDataSelector);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = SegmentFromGdt(kGdt[kTssSelector / 8], kTssSelector);

  kvm_regs regs{};
  regs.rflags = 0x2;  // bit 1 is reserved and must be set
  regs.rip = entry_address;
  regs.rsp = kBootStackTop;
  regs.rbp = kBootStackTop;

  if (entry == BootEntry::kLinux64) {
    sregs.cs = SegmentFromGdt(kGdt[kCode64Selector / 8], kCode64Selector);
    sregs.cr3 = kPml4Addr;
    sregs.cr4 |= kCr4Pae;
    sregs.cr0 |= kCr0Pe | kCr0Pg | kCr0Et;
    sregs.efer |= kEferLme | kEferLma;
    regs.rsi = kZeroPageAddr;
  } else {
    // PVH: 32-bit protected mode, paging off, EBX = hvm_start_info.
    sregs.cs = SegmentFromGdt(kGdt[kCode32Selector / 8], kCode32Selector);
    sregs.cr0 = (sregs.cr0 | kCr0Pe | kCr0Et) & ~kCr0Pg;
    sregs.cr4 = 0;
    sregs.efer = 0;
    regs.rbx = kZeroPageAddr;
  }
  vcpu.SetSregs(sregs);
  vcpu.SetRegs(regs);
}

void SetupVcpuMsrsAndFpu(kvm::Vcpu& vcpu) {
  vcpu.SetMsrs({
      {kMsrIa32SysenterCs, 0},
      {kMsrIa32SysenterEsp, 0},
      {kMsrIa32SysenterEip, 0},
      {kMsrStar, 0},
      {kMsrCstar, 0},
      {kMsrKernelGsBase, 0},
      {kMsrSyscallMask, 0},
      {kMsrLstar, 0},
      {kMsrIa32Tsc, 0},
      {kMsrIa32MiscEnable, 1},  // fast-string enable, as firmware leaves it
      // MTRRs enabled with write-back default: without it Linux maps all RAM uncached.
      {kMsrMtrrDefType, (1u << 11) | 6},
  });
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;      // x87 default control word after FNINIT
  fpu.mxcsr = 0x1f80;   // SSE exceptions masked
  vcpu.SetFpu(fpu);
}

void SetupLapicLints(kvm::Vcpu& vcpu) {
  kvm_lapic_state lapic = vcpu.GetLapic();
  auto set_mode = [&lapic](uint32_t reg, uint32_t mode) {
    uint32_t value;
    std::memcpy(&value, lapic.regs + reg, 4);
    value = (value & ~0x700u) | (mode << 8);
    std::memcpy(lapic.regs + reg, &value, 4);
  };
  set_mode(kApicLvt0, kApicModeExtInt);
  set_mode(kApicLvt1, kApicModeNmi);
  vcpu.SetLapic(lapic);
}

}  // namespace virga::x86
