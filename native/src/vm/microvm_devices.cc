#include "vm/microvm_devices.h"

#include <cstdio>

#include "arch/x86_64/layout.h"
#include "common/error.h"

namespace virga {

namespace {

constexpr uint64_t kBalloonPage = 4096;

std::string SlotAddr(uint32_t slot) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%x", slot);
  return text;
}

std::string BlockName(uint32_t slot) { return std::string("vd") + static_cast<char>('a' + slot); }
std::string NetName(uint32_t slot) { return "eth" + std::to_string(slot); }

const char* StatName(uint16_t tag) {
  switch (tag) {
    case virtio::Balloon::kStatSwapIn: return "stat-swap-in";
    case virtio::Balloon::kStatSwapOut: return "stat-swap-out";
    case virtio::Balloon::kStatMajorFaults: return "stat-major-faults";
    case virtio::Balloon::kStatMinorFaults: return "stat-minor-faults";
    case virtio::Balloon::kStatFreeMemory: return "stat-free-memory";
    case virtio::Balloon::kStatTotalMemory: return "stat-total-memory";
    case virtio::Balloon::kStatAvailableMemory: return "stat-available-memory";
    case virtio::Balloon::kStatDiskCaches: return "stat-disk-caches";
    default: return nullptr;
  }
}

}  // namespace

void RequireBalloonReady(const virtio::Balloon* balloon) {
  if (balloon == nullptr || !balloon->driver_ready()) {
    throw QmpError("DeviceNotActive", "No balloon device has been activated");
  }
}

void SetBalloonBytes(virtio::Balloon& balloon, uint64_t bytes, uint64_t memory_bytes) {
  uint64_t wanted = bytes > memory_bytes ? memory_bytes : bytes;
  balloon.SetTarget(static_cast<uint32_t>((memory_bytes - wanted) / kBalloonPage));
}

std::optional<Json> BalloonChanged(const virtio::Balloon& balloon, uint32_t actual_pages, uint64_t memory_bytes) {
  // Told once the guest has got where it was asked to, as QMP.md says.
  if (actual_pages != balloon.target_pages()) return std::nullopt;
  return Json(Json::Object{{"actual", Json(memory_bytes - uint64_t{actual_pages} * kBalloonPage)}});
}

Json QueryBalloonJson(virtio::Balloon& balloon, uint64_t memory_bytes) {
  balloon.RequestStats();
  virtio::BalloonStats stats = balloon.Stats();
  Json::Object out{
      {"actual", Json(memory_bytes - uint64_t{balloon.actual_pages()} * kBalloonPage)},
      {"target", Json(memory_bytes - uint64_t{balloon.target_pages()} * kBalloonPage)},
      {"memory", Json(memory_bytes)},
  };
  Json::Object values;
  for (const auto& [tag, value] : stats.values) {
    if (const char* name = StatName(tag)) values[name] = Json(value);
  }
  out["stats"] = Json(std::move(values));
  if (stats.updated_unix != 0) out["stats-updated"] = Json(stats.updated_unix);
  return Json(std::move(out));
}

std::string FormatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

std::optional<MacAddress> ParseMac(const std::string& text) {
  MacAddress mac{};
  if (text.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    unsigned value = 0;
    for (size_t j = 0; j < 2; ++j) {
      char c = text[i * 3 + j];
      value <<= 4;
      if (c >= '0' && c <= '9') value |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') value |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') value |= static_cast<unsigned>(c - 'A' + 10);
      else return std::nullopt;
    }
    mac[i] = static_cast<uint8_t>(value);
  }
  return mac;
}

MacAddress DerivedMac(const std::string& identity, uint32_t slot) {
  // FNV-1a, 32 bits: stable across builds and hosts, unlike std::hash.
  uint32_t hash = 2166136261u;
  for (unsigned char c : identity) {
    hash ^= c;
    hash *= 16777619u;
  }
  // 0x52: unicast (bit 0 clear), locally administered (bit 1 set).
  return {0x52, 0x56, static_cast<uint8_t>(hash >> 16), static_cast<uint8_t>(hash >> 8), static_cast<uint8_t>(hash),
          static_cast<uint8_t>(slot)};
}

MicrovmDevices::MicrovmDevices(const std::vector<DiskConfig>& disks, const std::vector<NicConfig>& nics,
                               const std::optional<BalloonDeviceConfig>& balloon, const std::string& identity,
                               const MachineLayout* saved, uint64_t memory_bytes, const AddSlot& add_slot,
                               Emit emit)
    : memory_bytes_(memory_bytes), emit_(std::move(emit)) {
  block_slots_.resize(x86::kBlockSlots);
  net_slots_.resize(x86::kNetSlots);
  for (uint32_t slot = 0; slot < x86::kBlockSlots; ++slot) {
    std::unique_ptr<BlockFile> file;
    for (const DiskConfig& disk : disks) {
      if (disk.slot != slot) continue;
      try {
        file = BlockFile::Open(disk.file);
      } catch (const VmmError& e) {
        throw VmmError("disk " + disk.id, e);
      }
      backends_.RecordBlock(disk.node_name, disk.file, disk.id);
      block_slots_[slot] = {disk.id, disk.node_name};
    }
    auto device = std::make_shared<virtio::Block>(std::move(file));
    blocks_.push_back(device);
    block_transports_.push_back(add_slot(slot, [device](const std::shared_ptr<EventLoop>&) { return device; }));
  }
  for (uint32_t i = 0; i < x86::kNetSlots; ++i) {
    std::unique_ptr<Tap> tap;
    MacAddress mac = DerivedMac(identity, i);
    bool keeps_wire_mac = false;
    for (const NicConfig& nic : nics) {
      if (nic.slot != i) continue;
      try {
        tap = nic.fd >= 0 ? Tap::Adopt(UniqueFd(nic.fd), "fd=" + std::to_string(nic.fd)) : Tap::Open(nic.ifname);
      } catch (const VmmError& e) {
        throw VmmError("netdev " + nic.netdev, e);
      }
      if (nic.mac) mac = *nic.mac;
      // A NIC restored without mac= is still on the network it was.
      keeps_wire_mac = !nic.mac.has_value();
      backends_.RecordNet(nic.netdev, tap->ifname(), nic.id);
      net_slots_[i] = {nic.id, nic.netdev};
    }
    MacAddress guest_mac = saved != nullptr ? saved->nics[i].mac : mac;
    // An empty slot takes this VM's own derived MAC, so a NIC a clone
    // hot-plugs later does not share its template's.
    MacAddress wire_mac = saved != nullptr && keeps_wire_mac ? saved->nics[i].wire_mac : mac;
    std::shared_ptr<virtio::Net> device;
    net_transports_.push_back(add_slot(x86::kBlockSlots + i, [&](const std::shared_ptr<EventLoop>& loop) {
      device = std::make_shared<virtio::Net>(guest_mac, std::move(tap), loop);
      device->SetMacs(guest_mac, wire_mac);
      return device;
    }));
    nets_.push_back(device);
  }
  if (balloon) {
    balloon_id_ = balloon->id;
    balloon_options_ = balloon->options;
    balloon_ = std::make_shared<virtio::Balloon>(balloon->options, [this](uint32_t actual) { OnBalloonActual(actual); });
    auto device = balloon_;
    balloon_transport_ = add_slot(x86::kBalloonSlot, [device](const std::shared_ptr<EventLoop>&) { return device; });
  }
}

// ---- backends -----------------------------------------------------------

void MicrovmDevices::AddBlockBackend(const std::string& node_name, const BlockFileConfig& file) {
  std::lock_guard guard(lock_);
  backends_.AddBlock(node_name, file);
}

void MicrovmDevices::RemoveBlockBackend(const std::string& node_name) {
  std::lock_guard guard(lock_);
  backends_.RemoveBlock(node_name);
}

void MicrovmDevices::AddNetBackend(const std::string& id, const std::string& ifname, UniqueFd fd,
                                   const std::string& fd_label) {
  std::lock_guard guard(lock_);
  backends_.AddNet(id, ifname, std::move(fd), fd_label);
}

void MicrovmDevices::RemoveNetBackend(const std::string& id) {
  std::lock_guard guard(lock_);
  backends_.RemoveNet(id);
}

// ---- devices ------------------------------------------------------------

uint32_t MicrovmDevices::PickSlot(const DeviceAddRequest& request, uint32_t count, const std::vector<SlotState>& states,
                                  const char* kind_name) const {
  if (!request.slot) {
    for (uint32_t slot = 0; slot < count; ++slot) {
      if (states[slot].device_id.empty()) return slot;
    }
    throw VmmError("addr: every " + std::string(kind_name) + " slot is occupied (" + std::to_string(count) +
                   " on the microvm)");
  }
  uint32_t slot = *request.slot;
  std::string given = request.slot_field == "lun" ? "lun " + std::to_string(slot - 1) : SlotAddr(slot);
  if (slot >= count) {
    throw VmmError(request.slot_field + ": " + given + " is out of range; the microvm has " + std::to_string(count) +
                   " " + kind_name + " slots (0x0.." + SlotAddr(count - 1) + ")");
  }
  if (!states[slot].device_id.empty()) {
    std::string guest = request.kind == DeviceAddRequest::Kind::kBlock ? BlockName(slot) : NetName(slot);
    throw VmmError(request.slot_field + ": " + kind_name + " slot " + SlotAddr(slot) + " (" + guest +
                   ") is occupied by '" + states[slot].device_id + "'");
  }
  return slot;
}

void MicrovmDevices::AddDevice(const DeviceAddRequest& request) {
  if (request.kind == DeviceAddRequest::Kind::kVfio) {
    throw VmmError("driver: 'vfio-pci' needs the standard machine (-machine q35)");
  }
  bool block = request.kind == DeviceAddRequest::Kind::kBlock;
  virtio::MmioTransport* transport = nullptr;
  {
    std::lock_guard guard(lock_);
    auto in_use = [&](const std::vector<SlotState>& states) {
      for (const SlotState& s : states) {
        if (s.device_id == request.id) return true;
      }
      return false;
    };
    if (in_use(block_slots_) || in_use(net_slots_) || (balloon_ && balloon_id_ == request.id)) {
      throw VmmError("id: device '" + request.id + "' already exists");
    }
    backends_.RequireAttachable(request, block ? "virtio-blk-mmio" : "virtio-net-mmio");
    if (block) {
      BackendRegistry::Block& backend = backends_.block(request.backend);
      if (request.mac) throw VmmError("mac: only NICs have a MAC address");
      uint32_t slot = PickSlot(request, x86::kBlockSlots, block_slots_, "block");
      blocks_[slot]->Attach(std::move(backend.file));
      backend.device = request.id;
      block_slots_[slot] = {request.id, request.backend};
      transport = block_transports_[slot];
    } else {
      BackendRegistry::Net& backend = backends_.net(request.backend);
      uint32_t slot = PickSlot(request, x86::kNetSlots, net_slots_, "NIC");
      if (request.mac && *request.mac != nets_[slot]->wire_mac()) {
        throw VmmError("mac: NIC slot " + SlotAddr(slot) + " has MAC " + FormatMac(nets_[slot]->wire_mac()) +
                       " fixed at boot (the guest reads it once); give another MAC on the command line "
                       "(-device virtio-net-device,mac=...) or omit mac");
      }
      nets_[slot]->Attach(std::move(backend.tap));
      backend.device = request.id;
      net_slots_[slot] = {request.id, request.backend};
      transport = net_transports_[slot];
    }
  }
  // Outside our lock and the device's: the transport takes its own.
  transport->SignalConfigChange();
}

void MicrovmDevices::DeleteDevice(const std::string& id) {
  virtio::MmioTransport* transport = nullptr;
  {
    std::lock_guard guard(lock_);
    if (balloon_ && balloon_id_ == id) {
      throw VmmError("id: '" + id + "' is the balloon, which cannot be unplugged from the microvm");
    }
    for (uint32_t slot = 0; slot < block_slots_.size() && !transport; ++slot) {
      if (block_slots_[slot].device_id != id) continue;
      blocks_[slot]->Detach();  // the file closes here
      backends_.EraseBlock(block_slots_[slot].backend);
      block_slots_[slot] = {};
      transport = block_transports_[slot];
    }
    for (uint32_t slot = 0; slot < net_slots_.size() && !transport; ++slot) {
      if (net_slots_[slot].device_id != id) continue;
      nets_[slot]->Detach();  // the tap closes here
      backends_.EraseNet(net_slots_[slot].backend);
      net_slots_[slot] = {};
      transport = net_transports_[slot];
    }
    if (!transport) throw NotFound("Device '" + id + "' not found");
  }
  transport->SignalConfigChange();
}

// ---- balloon ------------------------------------------------------------

void MicrovmDevices::SetBalloonTarget(uint64_t bytes) {
  {
    std::lock_guard guard(lock_);
    RequireBalloonReady(balloon_.get());
    SetBalloonBytes(*balloon_, bytes, memory_bytes_);
  }
  balloon_transport_->SignalConfigChange();
}

void MicrovmDevices::OnBalloonActual(uint32_t actual_pages) {
  if (std::optional<Json> data = BalloonChanged(*balloon_, actual_pages, memory_bytes_)) {
    emit_("BALLOON_CHANGED", std::move(*data));
  }
}

Json MicrovmDevices::QueryBalloon() {
  std::lock_guard guard(lock_);
  RequireBalloonReady(balloon_.get());
  return QueryBalloonJson(*balloon_, memory_bytes_);
}

Json MicrovmDevices::Describe() const {
  std::lock_guard guard(lock_);
  auto id_or_null = [](const std::string& s) { return s.empty() ? Json() : Json(s); };
  Json::Array block;
  for (uint32_t slot = 0; slot < block_slots_.size(); ++slot) {
    const SlotState& state = block_slots_[slot];
    Json::Object entry{{"slot", Json(slot)},           {"addr", Json(SlotAddr(slot))},
                       {"guest-name", Json(BlockName(slot))}, {"device", id_or_null(state.device_id)},
                       {"node-name", id_or_null(state.backend)}, {"size", Json(blocks_[slot]->capacity_sectors() * 512)}};
    const BackendRegistry::Block* backend = backends_.FindBlock(state.backend);
    bool attached = !state.device_id.empty() && backend != nullptr;
    entry["file"] = attached ? Json(backend->config.path) : Json();
    entry["read-only"] = Json(attached && backend->config.read_only);
    entry["direct"] = Json(attached && backend->config.direct);
    block.push_back(Json(std::move(entry)));
  }
  Json::Array net;
  for (uint32_t slot = 0; slot < net_slots_.size(); ++slot) {
    const SlotState& state = net_slots_[slot];
    const BackendRegistry::Net* backend = backends_.FindNet(state.backend);
    bool attached = !state.device_id.empty() && backend != nullptr;
    virtio::NetCounters c = nets_[slot]->counters();
    MacAddress wire_mac = nets_[slot]->wire_mac(), guest_mac = nets_[slot]->guest_mac();
    Json::Object nic{{"slot", Json(slot)},
                     {"addr", Json(SlotAddr(slot))},
                     {"guest-name", Json(NetName(slot))},
                     {"device", id_or_null(state.device_id)},
                     {"netdev", id_or_null(state.backend)},
                     {"ifname", attached ? Json(backend->ifname) : Json()},
                     {"mac", Json(FormatMac(wire_mac))},
                     {"link", Json(nets_[slot]->link_up() ? "up" : "down")},
                     {"driver-ready", Json(nets_[slot]->driver_ready())},
                     {"rx-frames", Json(c.rx_frames)},
                     {"tx-frames", Json(c.tx_frames)},
                     {"rx-bytes", Json(c.rx_bytes)},
                     {"tx-bytes", Json(c.tx_bytes)},
                     {"rx-dropped", Json(c.rx_dropped)},
                     {"tx-dropped", Json(c.tx_dropped)},
                     {"tx-notifications", Json(c.tx_notifications)},
                     {"rx-notifications", Json(c.rx_notifications)},
                     {"tx-interrupts", Json(c.tx_interrupts)},
                     {"rx-interrupts", Json(c.rx_interrupts)},
                     {"tx-gso-frames", Json(c.tx_gso_frames)},
                     {"tx-blocked", Json(c.tx_blocked)}};
    // The guest's own name for itself, when the VMM translates (a clone).
    if (guest_mac != wire_mac) nic["guest-mac"] = Json(FormatMac(guest_mac));
    net.push_back(Json(std::move(nic)));
  }
  Json balloon;
  if (balloon_) {
    balloon = Json(Json::Object{{"device", Json(balloon_id_)}, {"driver-ready", Json(balloon_->driver_ready())}});
  }
  return Json(Json::Object{
      {"block", Json(std::move(block))},
      {"net", Json(std::move(net))},
      {"balloon", balloon},
      {"backends", backends_.DescribeUnattached()},
  });
}

void MicrovmDevices::AdoptMacs(const MachineLayout& layout) {
  std::lock_guard guard(lock_);
  for (uint32_t slot = 0; slot < nets_.size(); ++slot) {
    nets_[slot]->SetMacs(layout.nics[slot].mac, layout.nics[slot].wire_mac);
  }
}

void MicrovmDevices::FillLayout(MachineLayout* layout) const {
  std::lock_guard guard(lock_);
  for (uint32_t slot = 0; slot < block_slots_.size(); ++slot) {
    auto& disk = layout->disks[slot];
    disk.present = !block_slots_[slot].device_id.empty();
    disk.bytes = disk.present ? blocks_[slot]->capacity_sectors() * 512 : 0;
    disk.read_only = disk.present && blocks_[slot]->read_only();
  }
  for (uint32_t slot = 0; slot < net_slots_.size(); ++slot) {
    layout->nics[slot].present = !net_slots_[slot].device_id.empty();
    layout->nics[slot].mac = nets_[slot]->guest_mac();
    layout->nics[slot].wire_mac = nets_[slot]->wire_mac();
  }
  layout->balloon = balloon_ != nullptr;
  layout->balloon_deflate_on_oom = balloon_ && balloon_options_.deflate_on_oom;
  layout->balloon_free_page_reporting = balloon_ && balloon_options_.free_page_reporting;
}

}  // namespace virga
