#include "arch/x86_64/kernel_loader.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "arch/x86_64/layout.h"
#include "common/error.h"
#include "common/fd.h"

namespace virga::x86 {

namespace {

constexpr uint32_t kXenElfnotePhys32Entry = 18;
constexpr uint32_t kBzImageMagic = 0x53726448;  // "HdrS"
constexpr uint16_t kXlfKernel64 = 1 << 0;
constexpr uint64_t kPage = 4096;

bool IsZero(const uint8_t* data, uint64_t len) {
  uint64_t word = 0;
  for (uint64_t i = 0; i + 8 <= len; i += 8) {
    std::memcpy(&word, data + i, 8);
    if (word != 0) return false;
  }
  for (uint64_t i = len & ~7ULL; i < len; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

// A kernel or initrd file, mapped read-only: segments are copied straight
// into guest memory, without a copy of the whole image in VMM memory (a
// distro vmlinux is ~65 MB, and every extra pass over it is boot time).
// memcpy from the page cache mapping beat pread by ~5x inside a nested L1.
class ImageFile {
 public:
  ImageFile(const std::string& path, const char* what) : path_(path), what_(what) {
    fd_.Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_.valid()) throw ErrnoError(std::string("cannot open ") + what + " " + path);
    struct stat st {};
    if (::fstat(fd_.get(), &st) < 0) throw ErrnoError(std::string("cannot stat ") + what + " " + path);
    if (!S_ISREG(st.st_mode)) throw VmmError(std::string(what) + " " + path + " is not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_.get(), 0);
      if (mapped != MAP_FAILED) {
        mapping_ = static_cast<const uint8_t*>(mapped);
        ::madvise(mapped, size_, MADV_SEQUENTIAL);
      }
    }
  }
  ~ImageFile() {
    if (mapping_ != nullptr) ::munmap(const_cast<uint8_t*>(mapping_), size_);
  }
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;

  uint64_t size() const { return size_; }

  // Reads exactly len bytes at offset into dst; the error says what was short.
  void ReadAt(uint64_t offset, void* dst, uint64_t len) const {
    if (offset > size_ || len > size_ - offset) throw VmmError(std::string(what_) + " " + path_ + " is truncated");
    if (len == 0) return;  // dst may be an empty vector's null buffer
    auto* out = static_cast<uint8_t*>(dst);
    if (mapping_ != nullptr) {
      std::memcpy(out, mapping_ + offset, len);
      return;
    }
    uint64_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd_.get(), out + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw ErrnoError(std::string("cannot read ") + what_ + " " + path_);
      if (n == 0) throw VmmError(std::string(what_) + " " + path_ + " is truncated");
      done += static_cast<uint64_t>(n);
    }
  }

  std::vector<uint8_t> Read(uint64_t offset, uint64_t len) const {
    std::vector<uint8_t> data(len);
    ReadAt(offset, data.data(), len);
    return data;
  }

  // Reads into guest memory at gpa; the error names what did not fit.
  void ReadIntoGuest(const GuestMemory& memory, uint64_t gpa, uint64_t offset, uint64_t len,
                     const std::string& what) const {
    uint8_t* host = memory.Translate(gpa, len);
    if (host == nullptr) {
      char buf[96];
      snprintf(buf, sizeof(buf), " does not fit in guest memory (0x%llx + 0x%llx)",
               static_cast<unsigned long long>(gpa), static_cast<unsigned long long>(len));
      throw VmmError(what + buf);
    }
    if (mapping_ == nullptr || offset > size_ || len > size_ - offset) {
      ReadAt(offset, host, len);
      return;
    }
    // A vmlinux carries .bss, .brk and scratch space as file zeros (24 of
    // Debian's 58 MB). Runs of all-zero pages are dropped rather than
    // copied: on a fresh VM they are zero already, and each page copied
    // costs a page fault and a write (measured as the bulk of a nested L1
    // boot's kernel load).
    const uint8_t* src = mapping_ + offset;
    uint64_t done = 0;
    while (done < len) {
      // Runs end on guest page boundaries, so only whole pages are dropped.
      uint64_t step = kPage - ((gpa + done) & (kPage - 1));
      bool zero = step <= len - done && IsZero(src + done, step);
      uint64_t run = std::min(step, len - done);
      while (done + run < len) {
        uint64_t next = std::min(kPage, len - done - run);
        if ((next == kPage && IsZero(src + done + run, kPage)) != zero) break;
        run += next;
      }
      if (zero) {
        memory.Zero(gpa + done, run);
      } else {
        std::memcpy(host + done, src + done, run);
      }
      done += run;
    }
  }

 private:
  std::string path_;
  const char* what_;
  UniqueFd fd_;
  uint64_t size_ = 0;
  const uint8_t* mapping_ = nullptr;  // null when the file cannot be mapped: pread then
};

uint64_t FindPvhEntry(const std::vector<uint8_t>& notes) {
  uint64_t offset = 0;
  uint64_t end = notes.size();
  while (offset + sizeof(Elf64_Nhdr) <= end) {
    Elf64_Nhdr header;
    std::memcpy(&header, notes.data() + offset, sizeof(header));
    uint64_t name_at = offset + sizeof(header);
    uint64_t desc_at = name_at + ((header.n_namesz + 3) & ~3u);
    uint64_t next = desc_at + ((header.n_descsz + 3) & ~3u);
    if (next > end) return 0;
    bool is_xen = header.n_namesz == 4 && std::memcmp(notes.data() + name_at, "Xen", 4) == 0;
    if (is_xen && header.n_type == kXenElfnotePhys32Entry) {
      // Linux emits the address as .quad on 64-bit builds, others as .long.
      if (header.n_descsz == 4) {
        uint32_t entry;
        std::memcpy(&entry, notes.data() + desc_at, 4);
        return entry;
      }
      if (header.n_descsz == 8) {
        uint64_t entry;
        std::memcpy(&entry, notes.data() + desc_at, 8);
        return entry;
      }
    }
    offset = next;
  }
  return 0;
}

LoadedKernel LoadElf(const GuestMemory& memory, const ImageFile& file) {
  if (file.size() < sizeof(Elf64_Ehdr)) throw VmmError("ELF header truncated");
  Elf64_Ehdr ehdr;
  file.ReadAt(0, &ehdr, sizeof(ehdr));
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
    throw VmmError("not an x86-64 ELF64 kernel");
  }
  if (ehdr.e_phentsize != sizeof(Elf64_Phdr) ||
      ehdr.e_phoff + static_cast<uint64_t>(ehdr.e_phnum) * sizeof(Elf64_Phdr) > file.size()) {
    throw VmmError("ELF program headers out of bounds");
  }
  std::vector<uint8_t> headers = file.Read(ehdr.e_phoff, static_cast<uint64_t>(ehdr.e_phnum) * sizeof(Elf64_Phdr));
  LoadedKernel kernel;
  kernel.entry64 = ehdr.e_entry;
  bool loaded_any = false;
  for (unsigned i = 0; i < ehdr.e_phnum; ++i) {
    Elf64_Phdr phdr;
    std::memcpy(&phdr, headers.data() + i * sizeof(Elf64_Phdr), sizeof(phdr));
    if (phdr.p_type == PT_NOTE) {
      if (kernel.pvh_entry == 0 && phdr.p_filesz <= 1 << 20 && phdr.p_offset + phdr.p_filesz <= file.size()) {
        kernel.pvh_entry = FindPvhEntry(file.Read(phdr.p_offset, phdr.p_filesz));
      }
      continue;
    }
    if (phdr.p_type != PT_LOAD) continue;
    if (phdr.p_offset + phdr.p_filesz > file.size() || phdr.p_filesz > phdr.p_memsz) {
      throw VmmError("ELF segment " + std::to_string(i) + " out of bounds");
    }
    if (phdr.p_paddr < kHighMemStart) throw VmmError("ELF segment " + std::to_string(i) + " below 1 MiB");
    file.ReadIntoGuest(memory, phdr.p_paddr, phdr.p_offset, phdr.p_filesz, "ELF segment " + std::to_string(i));
    if (!memory.Zero(phdr.p_paddr + phdr.p_filesz, phdr.p_memsz - phdr.p_filesz)) {
      throw VmmError("ELF segment " + std::to_string(i) + " does not fit in guest memory");
    }
    kernel.end = std::max(kernel.end, phdr.p_paddr + phdr.p_memsz);
    loaded_any = true;
  }
  if (!loaded_any) throw VmmError("ELF kernel has no loadable segment");
  return kernel;
}

LoadedKernel LoadBzImage(const GuestMemory& memory, const ImageFile& file, const std::vector<uint8_t>& head) {
  uint8_t setup_sects = head[0x1f1] == 0 ? 4 : head[0x1f1];
  uint16_t version;
  std::memcpy(&version, head.data() + 0x206, 2);
  if (version < 0x206) throw VmmError("bzImage boot protocol " + std::to_string(version >> 8) + "." +
                                      std::to_string(version & 0xff) + " is too old (need 2.06)");
  uint16_t xloadflags;
  std::memcpy(&xloadflags, head.data() + 0x236, 2);
  if (!(xloadflags & kXlfKernel64)) throw VmmError("bzImage has no 64-bit entry (XLF_KERNEL_64)");
  uint64_t setup_size = (static_cast<uint64_t>(setup_sects) + 1) * 512;
  if (setup_size >= file.size()) throw VmmError("bzImage truncated");
  LoadedKernel kernel;
  kernel.is_bzimage = true;
  // The setup header runs from 0x1f1 to 0x202 + the byte at 0x201.
  size_t header_end = std::min<size_t>(0x202 + head[0x201], head.size());
  kernel.setup_header.assign(head.begin() + 0x1f1, head.begin() + static_cast<long>(header_end));
  file.ReadIntoGuest(memory, kKernelLoadAddr, setup_size, file.size() - setup_size, "bzImage");
  // 64-bit entry sits 0x200 past the 32-bit one at the load address.
  kernel.entry64 = kKernelLoadAddr + 0x200;
  kernel.end = kKernelLoadAddr + (file.size() - setup_size);
  return kernel;
}

}  // namespace

LoadedKernel LoadKernel(const GuestMemory& memory, const std::string& path) {
  try {
    ImageFile file(path, "kernel");
    std::vector<uint8_t> head = file.Read(0, std::min<uint64_t>(file.size(), 0x400));
    if (head.size() >= 4 && std::memcmp(head.data(), ELFMAG, SELFMAG) == 0) return LoadElf(memory, file);
    uint32_t magic = 0;
    if (head.size() > 0x240) std::memcpy(&magic, head.data() + 0x202, 4);
    if (magic == kBzImageMagic) return LoadBzImage(memory, file, head);
    throw VmmError("unrecognised kernel format (expected ELF vmlinux or bzImage)");
  } catch (const VmmError& e) {
    throw VmmError("failed to load kernel " + path, e);
  }
}

uint64_t LoadInitrd(const GuestMemory& memory, const std::string& path, uint64_t kernel_end,
                    uint64_t max_address, uint64_t* size_out) {
  try {
    ImageFile file(path, "initrd");
    const MemoryRegion& low = memory.regions().front();
    uint64_t top = std::min(low.guest_base + low.size, max_address + 1);
    if (file.size() > top) throw VmmError("initrd larger than guest low memory");
    uint64_t address = (top - file.size()) & ~0xfffULL;
    if (address < kernel_end) throw VmmError("initrd does not fit above the kernel; give the guest more memory");
    file.ReadIntoGuest(memory, address, 0, file.size(), "initrd");
    *size_out = file.size();
    return address;
  } catch (const VmmError& e) {
    throw VmmError("failed to load initrd " + path, e);
  }
}

}  // namespace virga::x86
