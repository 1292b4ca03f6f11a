// "0x1f" formatting for addresses and registers in messages.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace virga {

inline std::string Hex(uint64_t value) {
  char buf[24];
  snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace virga
