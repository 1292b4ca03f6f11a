// CRC-32C (Castagnoli), the checksum of state and memory file headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace virga::state {

uint32_t Crc32c(const void* data, size_t len, uint32_t crc = 0);

}  // namespace virga::state
