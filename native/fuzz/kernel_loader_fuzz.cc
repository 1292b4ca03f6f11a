// The kernel loader (arch/x86_64/kernel_loader.cc) on any file: ELF
// headers, program headers, PVH notes and bzImage setup headers from the
// input, loaded into a 64 MiB guest. Each either loads or is refused with
// a VmmError naming the problem.
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "arch/x86_64/kernel_loader.h"
#include "common/error.h"
#include "seeds.h"

namespace {

using namespace virga;

// An ELF vmlinux: one segment at 1 MiB, a Xen PVH entry note.
std::vector<uint8_t> TinyElf() {
  std::vector<uint8_t> file(0x200);
  Elf64_Ehdr ehdr{};
  std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
  ehdr.e_ident[EI_CLASS] = ELFCLASS64;
  ehdr.e_machine = EM_X86_64;
  ehdr.e_entry = 0x100000;
  ehdr.e_phoff = sizeof(Elf64_Ehdr);
  ehdr.e_phentsize = sizeof(Elf64_Phdr);
  ehdr.e_phnum = 2;
  std::memcpy(file.data(), &ehdr, sizeof(ehdr));
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = 0x100;
  load.p_paddr = 0x100000;
  load.p_filesz = 0x40;
  load.p_memsz = 0x2000;
  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = 0x180;
  note.p_filesz = 24;
  std::memcpy(file.data() + sizeof(ehdr), &load, sizeof(load));
  std::memcpy(file.data() + sizeof(ehdr) + sizeof(load), &note, sizeof(note));
  const uint32_t nhdr[3] = {4, 8, 18};  // "Xen", an 8-byte XEN_ELFNOTE_PHYS32_ENTRY
  std::memcpy(file.data() + 0x180, nhdr, sizeof(nhdr));
  std::memcpy(file.data() + 0x18c, "Xen", 4);
  uint64_t entry = 0x100010;
  std::memcpy(file.data() + 0x190, &entry, 8);
  return file;
}

// A bzImage: setup sectors, "HdrS", protocol 2.15, XLF_KERNEL_64.
std::vector<uint8_t> TinyBzImage() {
  std::vector<uint8_t> file(5 * 512 + 0x400);
  file[0x1f1] = 4;
  file[0x201] = 0x6a;
  std::memcpy(file.data() + 0x202, "HdrS", 4);
  file[0x206] = 0x0f;
  file[0x207] = 0x02;
  file[0x236] = 1;
  return file;
}

fuzz::Seeds MakeSeeds() { return {{"elf", TinyElf()}, {"bzimage", TinyBzImage()}}; }

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* memory = new GuestMemory(64 << 20, 1ULL << 32);
  static int fd = ::memfd_create("kernel", MFD_CLOEXEC);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  try {
    x86::LoadKernel(*memory, path);
  } catch (const VmmError&) {
  }
  return 0;
}
