#include "devices/pci/vfio_pci_function.h"

#include <cstring>

#include "common/error.h"

namespace virga::pci {

namespace {

constexpr uint32_t kConventionalSize = 0x100;
constexpr uint32_t kRomBar = 0x30;
constexpr uint16_t kMsiEnable = 0x0001;
constexpr uint16_t kMsiMultipleEnable = 0x0070;  // log2 of the vectors enabled
constexpr uint16_t kMsi64bit = 0x0080;
constexpr uint16_t kMsiPerVectorMask = 0x0100;
constexpr uint64_t kPageSize = 4096;

// A BAR's registers as the guest reaches them through an exit: forwarded
// to the device's region.
class BarWindow : public BusDevice {
 public:
  BarWindow(std::shared_ptr<VfioDeviceIo> io, uint32_t region) : io_(std::move(io)), region_(region) {}
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override {
    if (!io_->ReadRegion(region_, offset, data, len)) std::memset(data, 0xff, len);
  }
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override {
    io_->WriteRegion(region_, offset, data, len);
  }

 private:
  std::shared_ptr<VfioDeviceIo> io_;
  uint32_t region_;
};

PciId HostId(const std::vector<uint8_t>& host) {
  auto word = [&](uint32_t at) { return static_cast<uint16_t>(host[at] | host[at + 1] << 8); };
  return PciId{word(kVendorId), word(kDeviceId),
               static_cast<uint32_t>(host[kClassCode] | host[kClassCode + 1] << 8 | host[kClassCode + 2] << 16),
               host[kRevision], word(kSubsystemVendorId), word(kSubsystemId)};
}

std::vector<uint8_t> ReadHostConfig(VfioDeviceIo& io) {
  uint64_t size = io.Region(kVfioConfigRegion).size;
  if (size < kConventionalSize) throw VmmError("host " + io.name() + ": VFIO offers no configuration space");
  std::vector<uint8_t> host(std::min<uint64_t>(size, kConfigSize));
  if (!io.ReadRegion(kVfioConfigRegion, 0, host.data(), static_cast<uint32_t>(host.size())) ||
      (host[0] == 0xff && host[1] == 0xff)) {
    throw VmmError("host " + io.name() + ": its configuration space cannot be read");
  }
  if ((host[kHeaderType] & 0x7f) != 0) {
    throw VmmError("host " + io.name() + ": header type " + std::to_string(host[kHeaderType] & 0x7f) +
                   " is a bridge's; only endpoints (type 0) can be passed through");
  }
  return host;
}

}  // namespace

VfioPciFunction::VfioPciFunction(std::unique_ptr<VfioDeviceIo> io) : VfioPciFunction(std::move(io), {}) {}

VfioPciFunction::VfioPciFunction(std::unique_ptr<VfioDeviceIo> io, std::vector<uint8_t> host)
    : PciDevice(HostId(host = ReadHostConfig(*io))), io_(std::move(io)) {
  // Past what VFIO offers (a conventional function has 256 bytes) and the
  // extended capabilities: zeros, so the guest finds no extended list.
  Emulate(kConventionalSize, kConfigSize - kConventionalSize, 0);
  // Type 0, multi-function as the guest's slot is (SetMultiFunction).
  source_[kHeaderType] = kOwnConfig;
  Emulate(kRomBar, 4, 0);
  Emulate(kInterruptLine, 1, 0, 0xff);
  Emulate(kInterruptPin, 1, 0);
  for (int i = 0; i < kBarCount; ++i) {
    uint32_t at = kBar0 + 4 * static_cast<uint32_t>(i);
    for (uint32_t b = 0; b < 4; ++b) source_[at + b] = kOwnConfig;
    uint32_t raw = host[at] | host[at + 1] << 8 | host[at + 2] << 16 | static_cast<uint32_t>(host[at + 3]) << 24;
    VfioRegion region = io_->Region(kVfioBarRegion0 + i);
    bool is_64bit = (raw & 0x7) == 0x4;
    // I/O BARs stay absent (reads 0): port I/O is not passed through yet.
    if (region.size == 0 || (raw & 1) != 0) continue;
    if (is_64bit && i == kBarCount - 1) continue;
    uint64_t size = std::max<uint64_t>(region.size, 16);
    if ((size & (size - 1)) != 0) {
      throw VmmError("host " + io_->name() + ": BAR " + std::to_string(i) + " is " + std::to_string(region.size) +
                     " bytes, not a power of two");
    }
    config_.AddMemoryBar(i, size, is_64bit, (raw & 0x8) != 0);
    SetBarRegisters(i, std::make_shared<BarWindow>(io_, kVfioBarRegion0 + i));
    if (region.mappable && size >= kPageSize) bar_memory_[i] = io_->MapRegion(kVfioBarRegion0 + i);
    if (is_64bit) {
      ++i;
      for (uint32_t b = 0; b < 4; ++b) source_[kBar0 + 4 * i + b] = kOwnConfig;
    }
  }
  FindCapabilities(host);
  emulated_power_on_ = emulated_;
}

// MSI is not turned off here: the board's GSI routes may be gone already,
// and closing the device fd tears VFIO's vectors down anyway.
VfioPciFunction::~VfioPciFunction() = default;

void VfioPciFunction::Emulate(uint32_t offset, uint32_t len, uint64_t value, uint64_t writable) {
  for (uint32_t i = 0; i < len; ++i) {
    source_[offset + i] = kEmulated;
    emulated_[offset + i] = i < 8 ? static_cast<uint8_t>(value >> (8 * i)) : 0;
    writable_[offset + i] = i < 8 ? static_cast<uint8_t>(writable >> (8 * i)) : 0;
  }
}

uint32_t VfioPciFunction::EmulatedValue(uint32_t offset, uint32_t len) const {
  uint32_t value = 0;
  for (uint32_t i = 0; i < len; ++i) value |= static_cast<uint32_t>(emulated_[offset + i]) << (8 * i);
  return value;
}

void VfioPciFunction::FindCapabilities(const std::vector<uint8_t>& host) {
  std::vector<uint32_t> kept;
  if (host[kStatus] & kStatusCapabilities) {
    uint32_t at = host[kCapabilitiesPointer] & 0xfc;
    // A list has at most 48 entries in 192 bytes; more means a loop.
    for (int n = 0; at >= 0x40 && at < kConventionalSize && n < 48; ++n) {
      uint8_t id = host[at];
      if (id == kCapabilityMsi && msi_ == 0) {
        msi_ = at;
      } else if (id == kCapabilityMsix) {
        at = host[at + 1] & 0xfc;
        continue;
      }
      kept.push_back(at);
      at = host[at + 1] & 0xfc;
    }
  }
  Emulate(kCapabilitiesPointer, 1, kept.empty() ? 0 : kept.front());
  for (size_t i = 0; i < kept.size(); ++i) Emulate(kept[i] + 1, 1, i + 1 < kept.size() ? kept[i + 1] : 0);
  if (msi_ == 0) return;
  uint16_t control = static_cast<uint16_t>(host[msi_ + 2] | host[msi_ + 3] << 8);
  msi_64bit_ = (control & kMsi64bit) != 0;
  msi_vectors_ = static_cast<uint16_t>(1u << std::min((control >> 1) & 7, 5));
  // Multiple message capable, 64-bit; no per-vector masking (its mask and
  // pending registers read 0).
  Emulate(msi_ + 2, 2, control & (0x000e | kMsi64bit), kMsiEnable | kMsiMultipleEnable);
  Emulate(msi_ + 4, 4, 0, 0xfffffffc);
  if (msi_64bit_) Emulate(msi_ + 8, 4, 0, 0xffffffff);
  Emulate(msi_ + (msi_64bit_ ? 12 : 8), 2, 0, 0xffff);
  msi_length_ = msi_64bit_ ? 14 : 10;
  if (control & kMsiPerVectorMask) {
    Emulate(msi_ + msi_length_, 10, 0);
    msi_length_ += 10;
  }
}

void VfioPciFunction::Connect(Hooks hooks) {
  std::lock_guard guard(lock_);
  if (hooks.vector_fds.size() < msi_vectors_) msi_vectors_ = static_cast<uint16_t>(hooks.vector_fds.size());
  hooks_ = std::move(hooks);
}

uint32_t VfioPciFunction::ReadConfig(uint32_t offset, uint32_t len) {
  if ((len != 1 && len != 2 && len != 4) || offset >= kConfigSize || kConfigSize - offset < len) return 0xffffffff;
  std::lock_guard guard(lock_);
  uint8_t device[4] = {0xff, 0xff, 0xff, 0xff};
  bool any_device = false;
  for (uint32_t i = 0; i < len; ++i) any_device |= source_[offset + i] == kDevice;
  if (any_device && !io_->ReadRegion(kVfioConfigRegion, offset, device, len)) std::memset(device, 0xff, sizeof(device));
  uint64_t own = config_.Read(offset & ~3u, 4) | uint64_t{config_.Read((offset & ~3u) + 4, 4)} << 32;
  own >>= 8 * (offset & 3);
  uint32_t value = 0;
  for (uint32_t i = 0; i < len; ++i) {
    uint8_t byte = 0;
    switch (source_[offset + i]) {
      case kDevice: byte = device[i]; break;
      case kEmulated: byte = emulated_[offset + i]; break;
      case kOwnConfig: byte = static_cast<uint8_t>(own >> (8 * i)); break;
    }
    value |= static_cast<uint32_t>(byte) << (8 * i);
  }
  return value;
}

void VfioPciFunction::WriteConfig(uint32_t offset, uint32_t len, uint32_t value) {
  if ((len != 1 && len != 2 && len != 4) || offset >= kConfigSize || kConfigSize - offset < len) return;
  std::lock_guard guard(lock_);
  // The BARs and header type, and a copy of the command register whose
  // memory-decoding bit says whether the BARs are mapped.
  config_.Write(offset, len, value);
  bool msi = false;
  for (uint32_t i = 0; i < len;) {
    uint32_t at = offset + i;
    uint8_t byte = static_cast<uint8_t>(value >> (8 * i));
    if (source_[at] == kEmulated) {
      emulated_[at] = static_cast<uint8_t>((emulated_[at] & ~writable_[at]) | (byte & writable_[at]));
      msi |= msi_ != 0 && at >= msi_ && at < msi_ + msi_length_;
    }
    if (source_[at] != kDevice) {
      ++i;
      continue;
    }
    // A run of the device's own bytes goes to it in one write.
    uint32_t run = 1;
    while (i + run < len && source_[at + run] == kDevice) ++run;
    uint8_t data[4];
    for (uint32_t b = 0; b < run; ++b) data[b] = static_cast<uint8_t>(value >> (8 * (i + b)));
    io_->WriteRegion(kVfioConfigRegion, at, data, run);
    i += run;
  }
  if (msi) MsiWrittenLocked();
}

void VfioPciFunction::MsiWrittenLocked() {
  uint16_t control = static_cast<uint16_t>(EmulatedValue(msi_ + 2, 2));
  if (!(control & kMsiEnable)) {
    MsiOffLocked();
    return;
  }
  uint16_t vectors = static_cast<uint16_t>(1u << ((control & kMsiMultipleEnable) >> 4));
  if (vectors > msi_vectors_) vectors = msi_vectors_;
  if (vectors == 0) return;
  uint64_t address = EmulatedValue(msi_ + 4, 4);
  if (msi_64bit_) address |= static_cast<uint64_t>(EmulatedValue(msi_ + 8, 4)) << 32;
  uint32_t data = EmulatedValue(msi_ + (msi_64bit_ ? 12 : 8), 2);
  // With several vectors, vector i's message is the data with i in its low bits.
  msi_routes_.resize(vectors);
  for (uint16_t v = 0; v < vectors; ++v) {
    MsiMessage message{address, (data & ~static_cast<uint32_t>(vectors - 1)) | v};
    if (message == msi_routes_[v] && msi_enabled_vectors_ != 0) continue;
    msi_routes_[v] = message;
    if (hooks_.route) hooks_.route(v, message);
  }
  if (vectors == msi_enabled_vectors_) return;
  if (msi_enabled_vectors_ != 0) io_->SetMsi({});
  io_->SetMsi(std::vector<int>(hooks_.vector_fds.begin(), hooks_.vector_fds.begin() + vectors));
  msi_enabled_vectors_ = vectors;
}

void VfioPciFunction::MsiOffLocked() {
  if (msi_enabled_vectors_ == 0) return;
  io_->SetMsi({});
  msi_enabled_vectors_ = 0;
  for (uint16_t v = 0; v < msi_routes_.size(); ++v) {
    if (hooks_.route) hooks_.route(v, {});
  }
  msi_routes_.clear();
}

void VfioPciFunction::ResetFunction() {
  PciDevice::ResetFunction();
  std::lock_guard guard(lock_);
  MsiOffLocked();
  // Decoding and bus mastering off at the device too, whether or not it
  // has a reset VFIO can do: no DMA from the last boot into the next.
  uint16_t command = 0;
  io_->WriteRegion(kVfioConfigRegion, kCommand, &command, sizeof(command));
  io_->Reset();
  emulated_ = emulated_power_on_;
}

void VfioPciFunction::BarMoved(int index, uint64_t from, uint64_t to) {
  if (bar_memory_[index] == nullptr || !hooks_.map_memory) return;
  uint64_t size = config_.BarSize(index);
  if (from != 0) hooks_.map_memory(index, from, size, nullptr);
  if (to != 0) hooks_.map_memory(index, to, size, bar_memory_[index]);
}

}  // namespace virga::pci
