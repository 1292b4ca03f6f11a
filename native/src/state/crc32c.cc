#include "state/crc32c.h"

#include <array>

namespace virga::state {

namespace {
std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // reflected polynomial
    table[i] = c;
  }
  return table;
}
}  // namespace

uint32_t Crc32c(const void* data, size_t len, uint32_t crc) {
  static const std::array<uint32_t, 256> kTable = MakeTable();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < len; ++i) crc = kTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

}  // namespace virga::state
