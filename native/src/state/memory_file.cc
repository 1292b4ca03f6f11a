#include "state/memory_file.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "state/byte_stream.h"
#include "state/crc32c.h"

namespace virga::state {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kHeaderBytes = kPage;
// mincore's granularity of work: one vector of this many pages at a time.
constexpr uint64_t kScanPages = 512;

void WriteAll(int fd, const uint8_t* data, uint64_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ErrnoError("writing the memory file");
    data += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}
}  // namespace

uint64_t WriteMemoryFile(int fd, const GuestMemory& memory) {
  ByteWriter header;
  header.Bytes(kMemoryMagic, sizeof(kMemoryMagic));
  header.U32(kMemoryFormat);
  header.U32(static_cast<uint32_t>(memory.regions().size()));
  uint64_t offset = kHeaderBytes;
  std::vector<FileRegion> layout;
  for (const MemoryRegion& r : memory.regions()) {
    layout.push_back({r.guest_base, r.size, offset});
    header.U64(r.guest_base);
    header.U64(r.size);
    header.U64(offset);
    offset += (r.size + kPage - 1) & ~(kPage - 1);
  }
  header.U32(Crc32c(header.data().data(), header.data().size()));
  std::vector<uint8_t> page(kHeaderBytes, 0);
  std::memcpy(page.data(), header.data().data(), header.data().size());
  // The whole size first: untouched pages stay holes and read as zeros.
  if (::ftruncate(fd, static_cast<off_t>(offset)) != 0) throw ErrnoError("sizing the memory file");
  WriteAll(fd, page.data(), page.size(), 0);

  uint64_t written = 0;
  std::vector<unsigned char> resident(kScanPages);
  for (size_t i = 0; i < memory.regions().size(); ++i) {
    const MemoryRegion& r = memory.regions()[i];
    for (uint64_t at = 0; at < r.size; at += kScanPages * kPage) {
      uint64_t chunk = std::min<uint64_t>(kScanPages * kPage, r.size - at);
      uint64_t pages = (chunk + kPage - 1) / kPage;
      // Anonymous pages never touched are not resident: they are zeros.
      if (::mincore(r.host + at, chunk, resident.data()) != 0) std::fill(resident.begin(), resident.end(), 1);
      for (uint64_t p = 0; p < pages;) {
        if (!(resident[p] & 1)) {
          ++p;
          continue;
        }
        uint64_t run = p;
        while (run < pages && (resident[run] & 1)) ++run;
        uint64_t from = at + p * kPage, len = std::min(chunk - p * kPage, (run - p) * kPage);
        WriteAll(fd, r.host + from, len, layout[i].file_offset + from);
        written += len;
        p = run;
      }
    }
  }
  return written;
}

std::vector<FileRegion> ReadMemoryFileLayout(int fd, const std::string& name) {
  std::vector<uint8_t> page(kHeaderBytes);
  ssize_t n = ::pread(fd, page.data(), page.size(), 0);
  if (n < 0) throw ErrnoError("reading " + name);
  if (static_cast<size_t>(n) < sizeof(kMemoryMagic) || std::memcmp(page.data(), kMemoryMagic, sizeof(kMemoryMagic)) != 0) {
    throw StateError(name + " is not a Virga memory file (no VIRGAMEM magic)");
  }
  ByteReader header(page.data(), static_cast<size_t>(n), name);
  header.Skip(sizeof(kMemoryMagic));
  uint32_t format = header.U32();
  if (format != kMemoryFormat) {
    throw StateError(name + " has memory format " + std::to_string(format) + "; this virga-vmm reads format " +
                     std::to_string(kMemoryFormat));
  }
  uint32_t count = header.Count(24);
  std::vector<FileRegion> regions;
  for (uint32_t i = 0; i < count; ++i) {
    FileRegion r;
    r.guest_base = header.U64();
    r.size = header.U64();
    r.file_offset = header.U64();
    regions.push_back(r);
  }
  size_t covered = header.position();
  uint32_t crc = header.U32();
  if (Crc32c(page.data(), covered) != crc) throw StateError(name + " has a corrupt header (checksum mismatch)");
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw ErrnoError("stat " + name);
  for (const FileRegion& r : regions) {
    if (r.file_offset % kPage != 0 || r.file_offset < kHeaderBytes || r.file_offset + r.size > static_cast<uint64_t>(st.st_size)) {
      throw StateError(name + " is truncated (a region ends past the end of the file)");
    }
  }
  return regions;
}

}  // namespace virga::state
