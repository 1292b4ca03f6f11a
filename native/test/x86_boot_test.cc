#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/kernel_loader.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "unit_test.h"

namespace virga::x86 {
namespace {

uint8_t Sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

TEST("mptable: floating pointer and config table checksum to zero and list every CPU") {
  GuestMemory memory(64 << 20, kMmioHoleStart);
  WriteMpTable(memory, {0, 1, 2, 3}, 4);
  uint8_t* fp = memory.Translate(kMpFloatingPointerAddr, 16);
  EXPECT_TRUE(std::memcmp(fp, "_MP_", 4) == 0);
  EXPECT_EQ(Sum(fp, 16), 0);
  uint32_t config = 0;
  std::memcpy(&config, fp + 4, 4);
  uint8_t* table = memory.Translate(config, 44);
  uint16_t length = 0;
  std::memcpy(&length, table + 4, 2);
  EXPECT_EQ(Sum(memory.Translate(config, length), length), 0);
  int cpus = 0;
  uint8_t* entry = table + 44;
  while (entry < table + length) {
    if (entry[0] == 0) {
      ++cpus;
      entry += 20;
    } else {
      entry += 8;
    }
  }
  EXPECT_EQ(cpus, 4);
}

TEST("mptable: an APIC id past 254 is refused by vCPU and id instead of cut to 8 bits") {
  GuestMemory memory(64 << 20, kMmioHoleStart);
  EXPECT_THROWS_WITH(WriteMpTable(memory, {0, 1, 256}, 257), "vCPU 2 has APIC id 256, beyond the table's 8-bit ids");
  EXPECT_THROWS_WITH(WriteMpTable(memory, {0, 255}, 1), "vCPU 1 has APIC id 255");
  EXPECT_THROWS_WITH(WriteMpTable(memory, {0, 1}, 256), "IOAPIC id 256 does not fit");
}

TEST("cpuid: APIC ids pack thread, core and socket fields") {
  CpuTopology topo{2, 3, 2};
  EXPECT_EQ(ApicIdFor(topo, 0), 0u);
  EXPECT_EQ(ApicIdFor(topo, 1), 1u);   // thread 1
  EXPECT_EQ(ApicIdFor(topo, 2), 2u);   // core 1
  EXPECT_EQ(ApicIdFor(topo, 6), 8u);   // socket 1: 1 thread bit + 2 core bits
  kvm_cpuid_entry2 leaf1{};
  leaf1.function = 1;
  kvm_cpuid_entry2 leafb0{};
  leafb0.function = 0xb;
  kvm_cpuid_entry2 leafb1{};
  leafb1.function = 0xb;
  leafb1.index = 1;
  auto entries = CpuidForVcpu({leaf1, leafb0, leafb1}, topo, 7);
  EXPECT_EQ(entries[0].ebx >> 24, 9u);
  EXPECT_EQ((entries[0].ebx >> 16) & 0xff, 6u);
  EXPECT_EQ(entries[1].ebx, 2u);
  EXPECT_EQ(entries[2].ebx, 6u);
  EXPECT_EQ(entries[2].eax, 3u);
  EXPECT_EQ(entries[2].edx, 9u);
}

TEST("boot_info: RAM above the MMIO hole moves to 4 GiB in the e820 map") {
  GuestMemory memory(4ULL << 30, kMmioHoleStart);
  auto map = BuildE820(memory);
  EXPECT_EQ(map.size(), 4u);
  EXPECT_EQ(map[2].address, kHighMemStart);
  EXPECT_EQ(map[2].address + map[2].size, kMmioHoleStart);
  EXPECT_EQ(map[3].address, 1ULL << 32);
  EXPECT_EQ(map[3].size, (4ULL << 30) - kMmioHoleStart);
}

TEST("boot_info: an over-long command line is refused with the limit") {
  GuestMemory memory(16 << 20, kMmioHoleStart);
  EXPECT_THROWS_WITH(WriteCmdline(memory, std::string(3000, 'x')), "limit is 2047");
}

// An x86-64 executable's header with `phnum` program headers right after it.
// Writes bytes to /tmp/<name>-<pid> and returns the path (the test unlinks it).
std::string WriteTempFile(const std::string& name, const void* data, size_t size) {
  std::string path = "/tmp/" + name + "-" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  [[maybe_unused]] ssize_t n = ::write(fd, data, size);
  ::close(fd);
  return path;
}

Elf64_Ehdr KernelElfHeader(uint64_t entry, uint16_t phnum) {
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = phnum;
  return eh;
}

std::string WriteElfWithPvhNote(uint32_t pvh_entry) {
  // Minimal ELF64: one PT_LOAD of 16 bytes at 1 MiB and one PT_NOTE (Xen, type 18).
  std::vector<uint8_t> file(0x200, 0);
  Elf64_Ehdr eh = KernelElfHeader(0x100000, 2);
  std::memcpy(file.data(), &eh, sizeof(eh));
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = 0x100;
  load.p_paddr = load.p_vaddr = 0x100000;
  load.p_filesz = 16;
  load.p_memsz = 64;
  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = 0x180;
  note.p_filesz = 12 + 4 + 4;
  std::memcpy(file.data() + eh.e_phoff, &load, sizeof(load));
  std::memcpy(file.data() + eh.e_phoff + sizeof(load), &note, sizeof(note));
  file[0x100] = 0xf4;  // hlt
  Elf64_Nhdr nh{4, 4, 18};
  std::memcpy(file.data() + 0x180, &nh, sizeof(nh));
  std::memcpy(file.data() + 0x18c, "Xen", 4);
  std::memcpy(file.data() + 0x190, &pvh_entry, 4);
  return WriteTempFile("virga-elf-test", file.data(), file.size());
}

TEST("kernel_loader: an ELF vmlinux gives its 64-bit entry, its PVH note, and a zeroed bss") {
  GuestMemory memory(16 << 20, kMmioHoleStart);
  memory.WriteObj<uint64_t>(0x100020, ~0ULL);
  std::string path = WriteElfWithPvhNote(0x100008);
  LoadedKernel k = LoadKernel(memory, path);
  ::unlink(path.c_str());
  EXPECT_EQ(k.entry64, 0x100000u);
  EXPECT_EQ(k.pvh_entry, 0x100008u);
  EXPECT_EQ(k.end, 0x100040u);
  uint64_t bss = 1;
  memory.ReadObj(0x100020, &bss);
  EXPECT_EQ(bss, 0u);
}

constexpr uint64_t kZeroPageElfPaddr = 0x200000;

// A one-segment vmlinux at kZeroPageElfPaddr whose pages are: data, zeros
// (dropped, not copied), data, then a 100-byte tail. Returns the file's
// path and fills `segment` with the bytes the guest must see.
std::string WriteElfWithZeroPage(std::vector<uint8_t>* segment) {
  constexpr uint64_t kPage = 4096, kSize = 3 * kPage + 100, kOffset = 0x1000;
  std::vector<uint8_t> file(kOffset + kSize, 0);
  Elf64_Ehdr eh = KernelElfHeader(kZeroPageElfPaddr, 1);
  std::memcpy(file.data(), &eh, sizeof(eh));
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = kOffset;
  load.p_paddr = load.p_vaddr = kZeroPageElfPaddr;
  load.p_filesz = load.p_memsz = kSize;
  std::memcpy(file.data() + eh.e_phoff, &load, sizeof(load));
  for (uint64_t i = 0; i < kSize; ++i) {
    if (i / kPage != 1) file[kOffset + i] = static_cast<uint8_t>(i * 7 + 1);
  }
  file[kOffset + kSize - 1] = 0;  // a zero byte in the tail is still data
  segment->assign(file.begin() + kOffset, file.end());
  return WriteTempFile("virga-elf-zero-test", file.data(), file.size());
}

TEST("kernel_loader: a segment's all-zero pages come out zero over old RAM, the rest byte for byte") {
  std::vector<uint8_t> segment;
  std::string path = WriteElfWithZeroPage(&segment);
  GuestMemory memory(16 << 20, kMmioHoleStart);
  // What a reset leaves behind: the old guest's bytes everywhere.
  std::vector<uint8_t> old(segment.size() + 4096, 0xa5);
  memory.Write(kZeroPageElfPaddr, old.data(), old.size());
  LoadKernel(memory, path);
  ::unlink(path.c_str());
  std::vector<uint8_t> loaded(segment.size());
  memory.Read(kZeroPageElfPaddr, loaded.data(), loaded.size());
  EXPECT_TRUE(loaded == segment);
  uint8_t after = 0;
  memory.ReadObj(kZeroPageElfPaddr + segment.size(), &after);
  EXPECT_EQ(after, 0xa5);
}

TEST("kernel_loader: RAM a guest wrote (not through Write) is zeroed once the machine forgets it was fresh") {
  std::vector<uint8_t> segment;
  std::string path = WriteElfWithZeroPage(&segment);
  GuestMemory memory(16 << 20, kMmioHoleStart);
  // A guest's own stores go straight to the mapping, as KVM does.
  std::memset(memory.Translate(kZeroPageElfPaddr, segment.size()), 0x5a, segment.size());
  memory.ForgetKnownZero();
  LoadKernel(memory, path);
  ::unlink(path.c_str());
  std::vector<uint8_t> loaded(segment.size());
  memory.Read(kZeroPageElfPaddr, loaded.data(), loaded.size());
  EXPECT_TRUE(loaded == segment);
}

TEST("kernel_loader: a file that is neither ELF nor bzImage is refused by name") {
  GuestMemory memory(16 << 20, kMmioHoleStart);
  std::string path = WriteTempFile("virga-notkernel", "hello", 5);
  EXPECT_THROWS_WITH(LoadKernel(memory, path), "unrecognised kernel format");
  ::unlink(path.c_str());
  EXPECT_THROWS_WITH(LoadKernel(memory, "/nonexistent/vmlinux"), "No such file");
}

}  // namespace
}  // namespace virga::x86
