#include "devices/bus.h"

#include "common/error.h"

namespace virga {

void Bus::Insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device) {
  std::unique_lock guard(lock_);
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + size) throw VmmError("bus range overlaps an existing device");
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size > base) throw VmmError("bus range overlaps an existing device");
  }
  ranges_.emplace(base, Range{size, std::move(device)});
}

bool Bus::Remove(uint64_t base) {
  std::unique_lock guard(lock_);
  return ranges_.erase(base) > 0;
}

std::shared_ptr<BusDevice> Bus::Find(uint64_t address, uint64_t* offset) const {
  std::shared_lock guard(lock_);
  auto it = ranges_.upper_bound(address);
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (address - it->first >= it->second.size) return nullptr;
  *offset = address - it->first;
  return it->second.device;
}

bool Bus::Read(uint64_t address, uint8_t* data, uint32_t len) const {
  uint64_t offset = 0;
  auto device = Find(address, &offset);
  if (!device) return false;
  device->Read(offset, data, len);
  return true;
}

bool Bus::Write(uint64_t address, const uint8_t* data, uint32_t len) const {
  uint64_t offset = 0;
  auto device = Find(address, &offset);
  if (!device) return false;
  device->Write(offset, data, len);
  return true;
}

}  // namespace virga
