// The q35 board's QMP side (docs/q35.md): backends, native PCIe hot-plug
// into root ports' slots, the balloon and virga-query-devices.
#include <cstdio>

#include "common/error.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "vm/microvm_devices.h"
#include "vm/q35.h"

namespace virga {

namespace {

std::string Hex(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%x", value);
  return text;
}

}  // namespace

std::string Q35Board::RootPortNames() const {
  std::string names;
  for (const auto& [id, port] : ports_) names += (names.empty() ? "'" : ", '") + id + "'";
  return names.empty() ? "the command line has none" : names;
}

// ---- backends -----------------------------------------------------------

void Q35Board::AddBlockBackend(const std::string& node_name, const BlockFileConfig& file) {
  std::lock_guard guard(lock_);
  backends_.AddBlock(node_name, file);
}

void Q35Board::RemoveBlockBackend(const std::string& node_name) {
  std::lock_guard guard(lock_);
  backends_.RemoveBlock(node_name);
}

void Q35Board::AddNetBackend(const std::string& id, const std::string& ifname, UniqueFd fd,
                             const std::string& fd_label) {
  std::lock_guard guard(lock_);
  backends_.AddNet(id, ifname, std::move(fd), fd_label);
}

void Q35Board::RemoveNetBackend(const std::string& id) {
  std::lock_guard guard(lock_);
  backends_.RemoveNet(id);
}

// ---- hot-plug -----------------------------------------------------------

void Q35Board::AddDevice(const DeviceAddRequest& request) {
  bool block = request.kind == DeviceAddRequest::Kind::kBlock;
  bool vfio = request.kind == DeviceAddRequest::Kind::kVfio;
  const std::string driver = vfio ? "vfio-pci" : block ? "virtio-blk-pci" : "virtio-net-pci";
  std::lock_guard guard(lock_);
  if (ports_.count(request.id)) throw VmmError("id: '" + request.id + "' is a pcie-root-port's id");
  for (const Function& f : functions_) {
    if (f.id == request.id) throw VmmError("id: device '" + request.id + "' already exists");
  }
  if (request.bus.empty()) {
    throw VmmError("bus: missing; " + driver + " is hot-plugged into a pcie-root-port (" + RootPortNames() + ")");
  }
  if (request.bus == "pcie.0") {
    throw VmmError("bus: pcie.0 has no hot-plug controller; plug " + driver + " into a pcie-root-port (" +
                   RootPortNames() + ")");
  }
  auto port = ports_.find(request.bus);
  if (port == ports_.end()) {
    throw VmmError("bus: no bus '" + request.bus + "'; expected a pcie-root-port's id (" + RootPortNames() + ")");
  }
  if (request.slot && *request.slot != 0) {
    throw VmmError(request.slot_field + ": " + Hex(*request.slot) + " is not a slot of root port '" + request.bus +
                   "', which has one: addr 0x0");
  }
  std::string occupant;
  for (const Function& f : functions_) {
    if (f.bus == request.bus) occupant = f.id;
  }
  if (port->second.port->unplug_pending()) {
    throw VmmError("bus: root port '" + request.bus + "' is still unplugging device '" + occupant +
                   "': the guest has not released its slot yet (DEVICE_DELETED says when it has)");
  }
  if (!occupant.empty()) {
    throw VmmError("bus: root port '" + request.bus + "' is occupied by device '" + occupant + "'");
  }
  if (vfio) {
    HotPlugVfio(request, port->second);
    return;
  }

  backends_.RequireAttachable(request, driver);
  auto loop = std::make_shared<EventLoop>();
  std::shared_ptr<virtio::VirtioDevice> device;
  std::string* attached_to = nullptr;
  if (block) {
    BackendRegistry::Block& backend = backends_.block(request.backend);
    if (request.mac) throw VmmError("mac: only NICs have a MAC address");
    device = std::make_shared<virtio::Block>(std::move(backend.file));
    attached_to = &backend.device;
  } else {
    BackendRegistry::Net& backend = backends_.net(request.backend);
    MacAddress mac = request.mac ? *request.mac : DerivedMac(config_.identity, MacPlace(request.bus, 0, 0));
    device = std::make_shared<virtio::Net>(mac, std::move(backend.tap), loop);
    attached_to = &backend.device;
  }
  Function function = MakeFunction(device, loop, port->second.window, IntxGsi(port->second.slot, 0));
  function.id = request.id;
  function.bus = request.bus;
  function.addr = "0x0.0";
  // What a snapshot's layout says of it (a destination has it on its command line).
  function.config.kind = block ? PciDeviceConfig::Kind::kBlock : PciDeviceConfig::Kind::kNet;
  function.config.id = request.id;
  function.config.bus = request.bus;
  function.kind = block ? Kind::kBlock : Kind::kNet;
  function.backend = request.backend;
  // The guest's hot-plug driver takes it from here (presence, interrupt).
  port->second.port->HotPlug(function.transport);
  *attached_to = request.id;
  io_threads_.Add(function.loop);
  functions_.push_back(std::move(function));
}

void Q35Board::HotPlugVfio(const DeviceAddRequest& request, Port& port) {
  if (request.host.empty() == request.sysfsdev.empty()) {
    throw VmmError("host: vfio-pci takes exactly one of host (DDDD:BB:SS.F) and sysfsdev (a sysfs directory)");
  }
  if (request.mac) throw VmmError("mac: only NICs have a MAC address");
  PciDeviceConfig config;
  config.kind = PciDeviceConfig::Kind::kVfio;
  config.id = request.id;
  config.bus = request.bus;
  config.host = request.host;
  config.sysfsdev = request.sysfsdev;
  // Its BARs start the port's window, as firmware would leave them (the
  // guest's pciehp may move them, within the window).
  std::shared_ptr<pci::VfioPciFunction> function = vfio_->Create(config, port.window, kRootPortWindowSize, request.bus);
  try {
    port.port->HotPlug(function);
  } catch (const VmmError& e) {
    vfio_->Remove(request.id);
    throw VmmError("bus: root port '" + request.bus + "'", e);
  }
  Function entry;
  entry.config = config;
  entry.id = request.id;
  entry.bus = request.bus;
  entry.addr = "0x0.0";
  entry.kind = Kind::kVfio;
  entry.vfio = std::move(function);
  entry.host = entry.vfio->host();
  functions_.push_back(std::move(entry));
}

void Q35Board::DeleteDevice(const std::string& id) {
  std::shared_ptr<pci::RootPort> port;
  {
    std::lock_guard guard(lock_);
    const Function* found = nullptr;
    for (const Function& f : functions_) {
      if (f.id == id) found = &f;
    }
    if (found == nullptr) {
      if (ports_.count(id)) throw VmmError("id: '" + id + "' is a pcie-root-port, which cannot be unplugged");
      throw NotFound("Device '" + id + "' not found");
    }
    if (found->kind == Kind::kBalloon) throw VmmError("id: '" + id + "' is the balloon, which cannot be unplugged");
    if (found->bus == "pcie.0") {
      throw VmmError("id: '" + id +
                     "' is on pcie.0, which has no hot-plug controller; only a device in a pcie-root-port's "
                     "slot can be unplugged");
    }
    port = ports_.at(found->bus).port;
  }
  if (port->unplug_pending()) {
    throw VmmError("id: device '" + id +
                   "' is already being unplugged: the guest has not released its slot yet (DEVICE_DELETED says "
                   "when it has)");
  }
  // Outside our lock: a slot the guest never powered gives the device back at once.
  port->RequestUnplug([this, id](std::shared_ptr<pci::PciDevice> device) {
    // The port's reference is the last but ours and our list's: a vfio-pci
    // function's device, group and container close within Removed.
    device.reset();
    Removed(id);
  });
}

void Q35Board::Removed(const std::string& id) {
  Function gone;
  {
    std::lock_guard guard(lock_);
    for (auto it = functions_.begin(); it != functions_.end(); ++it) {
      if (it->id != id) continue;
      gone = std::move(*it);
      functions_.erase(it);
      break;
    }
  }
  if (gone.kind == Kind::kVfio) {
    gone.vfio.reset();
    vfio_->Remove(id);
  } else if (!gone.device) {
    return;
  } else {
    RemoveVirtio(gone);
  }
  if (emit_) {
    emit_("DEVICE_DELETED",
          Json(Json::Object{{"device", Json(id)}, {"path", Json("/machine/peripheral/" + id)}}));
  }
}

void Q35Board::RemoveVirtio(Function& gone) {
  io_threads_.Remove(gone.loop);
  for (size_t v = 0; v < gone.vectors.size(); ++v) {
    vm_->UnregisterIrqfd(gone.vectors[v]->fd(), gone.gsis[v]);
    routes_->ReleaseMsi(gone.gsis[v]);
  }
  vm_->UnregisterIrqfd(gone.intx->fd(), gone.intx->gsi());
  {
    // The backend stays open, unattached, for blockdev-del / netdev_del (or another device_add).
    std::lock_guard guard(lock_);
    if (gone.kind == Kind::kBlock && backends_.FindBlock(gone.backend)) {
      BackendRegistry::Block& backend = backends_.block(gone.backend);
      backend.file = std::static_pointer_cast<virtio::Block>(gone.device)->Detach();
      backend.device.clear();
    } else if (gone.kind == Kind::kNet && backends_.FindNet(gone.backend)) {
      BackendRegistry::Net& backend = backends_.net(gone.backend);
      backend.tap = std::static_pointer_cast<virtio::Net>(gone.device)->Detach();
      backend.device.clear();
    }
  }
}

// ---- balloon ------------------------------------------------------------

void Q35Board::SetBalloonTarget(uint64_t bytes) {
  {
    std::lock_guard guard(lock_);
    RequireBalloonReady(balloon_.get());
    SetBalloonBytes(*balloon_, bytes, config_.memory_bytes);
  }
  balloon_transport_->SignalConfigChange();
}

void Q35Board::OnBalloonActual(uint32_t actual_pages) {
  std::optional<Json> data = BalloonChanged(*balloon_, actual_pages, config_.memory_bytes);
  if (data && emit_) emit_("BALLOON_CHANGED", std::move(*data));
}

Json Q35Board::QueryBalloon() {
  std::lock_guard guard(lock_);
  RequireBalloonReady(balloon_.get());
  return QueryBalloonJson(*balloon_, config_.memory_bytes);
}

// ---- virga-query-devices ------------------------------------------------

Json Q35Board::Describe() const {
  std::lock_guard guard(lock_);
  Json::Array pci;
  for (const auto& [id, port] : ports_) {
    std::string occupant;
    for (const Function& f : functions_) {
      if (f.bus == id) occupant = f.id;
    }
    pci.push_back(Json(Json::Object{{"id", Json(id)},
                                    {"driver", Json("pcie-root-port")},
                                    {"bus", Json("pcie.0")},
                                    {"addr", Json(port.addr)},
                                    {"secondary-bus", Json(uint64_t{port.bus})},
                                    {"device", occupant.empty() ? Json() : Json(occupant)},
                                    {"unplug-pending", Json(port.port->unplug_pending())}}));
  }
  for (const Function& f : functions_) {
    Json::Object entry{{"id", Json(f.id)}, {"bus", Json(f.bus)}, {"addr", Json(f.addr)}};
    if (f.kind == Kind::kBlock) {
      auto disk = std::static_pointer_cast<virtio::Block>(f.device);
      const BlockFileConfig& file = backends_.FindBlock(f.backend)->config;
      entry["driver"] = Json("virtio-blk-pci");
      entry["node-name"] = Json(f.backend);
      entry["file"] = Json(file.path);
      entry["read-only"] = Json(file.read_only);
      entry["direct"] = Json(file.direct);
      entry["size"] = Json(disk->capacity_sectors() * 512);
    } else if (f.kind == Kind::kNet) {
      auto nic = std::static_pointer_cast<virtio::Net>(f.device);
      virtio::NetCounters c = nic->counters();
      entry["driver"] = Json("virtio-net-pci");
      entry["netdev"] = Json(f.backend);
      entry["ifname"] = Json(backends_.FindNet(f.backend)->ifname);
      entry["mac"] = Json(FormatMac(nic->wire_mac()));
      entry["link"] = Json(nic->link_up() ? "up" : "down");
      entry["driver-ready"] = Json(nic->driver_ready());
      entry["rx-frames"] = Json(c.rx_frames);
      entry["tx-frames"] = Json(c.tx_frames);
    } else if (f.kind == Kind::kVfio) {
      entry["driver"] = Json("vfio-pci");
      entry["host"] = Json(f.host);
    } else {
      entry["driver"] = Json("virtio-balloon-pci");
      entry["driver-ready"] = Json(balloon_->driver_ready());
    }
    pci.push_back(Json(std::move(entry)));
  }
  Json balloon;
  if (balloon_) {
    balloon = Json(Json::Object{{"device", Json(balloon_id_)}, {"driver-ready", Json(balloon_->driver_ready())}});
  }
  return Json(Json::Object{
      {"machine", Json("q35")},
      {"pci", Json(std::move(pci))},
      {"balloon", balloon},
      {"backends", backends_.DescribeUnattached()},
  });
}

}  // namespace virga
