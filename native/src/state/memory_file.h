// A snapshot's `memory` file (docs/snapshots.md): one header page, then each
// guest RAM region, page-aligned, so a restore can map it copy-on-write.
// Pages the guest never touched are left as holes (the file is sparse).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "memory/guest_memory.h"

namespace virga::state {

constexpr char kMemoryMagic[8] = {'V', 'I', 'R', 'G', 'A', 'M', 'E', 'M'};
constexpr uint32_t kMemoryFormat = 1;

// Writes `memory` into `fd` (an empty file); returns the bytes of data
// written (holes not counted). Throws VmmError (disk full, I/O error).
uint64_t WriteMemoryFile(int fd, const GuestMemory& memory);

// Checks the header of an open memory file and returns its layout; `name`
// is the path, for errors ("not a Virga memory file", truncated, corrupt).
std::vector<FileRegion> ReadMemoryFileLayout(int fd, const std::string& name);

}  // namespace virga::state
