#include "vm/backend_registry.h"

namespace virga {

QmpError NotFound(const std::string& message) { return QmpError("DeviceNotFound", message); }

void BackendRegistry::AddBlock(const std::string& node_name, const BlockFileConfig& file) {
  if (blocks_.count(node_name) || nets_.count(node_name)) {
    throw VmmError("node-name: '" + node_name + "' is already in use");
  }
  std::unique_ptr<BlockFile> opened;
  try {
    opened = BlockFile::Open(file);
  } catch (const VmmError& e) {
    throw VmmError("file.filename", e);
  }
  blocks_[node_name] = {file, std::move(opened), ""};
}

void BackendRegistry::AddNet(const std::string& id, const std::string& ifname, UniqueFd fd,
                             const std::string& fd_label) {
  if (nets_.count(id) || blocks_.count(id)) throw VmmError("id: '" + id + "' is already in use");
  std::unique_ptr<Tap> tap;
  try {
    tap = fd.valid() ? Tap::Adopt(std::move(fd), fd_label) : Tap::Open(ifname);
  } catch (const VmmError& e) {
    throw VmmError(fd_label.empty() ? "ifname" : "fd", e);
  }
  std::string name = tap->ifname();
  nets_[id] = {name, std::move(tap), ""};
}

void BackendRegistry::RemoveBlock(const std::string& node_name) {
  auto it = blocks_.find(node_name);
  if (it == blocks_.end()) throw NotFound("node-name: no block backend '" + node_name + "'");
  if (!it->second.device.empty()) {
    throw VmmError("node-name: '" + node_name + "' is attached to device '" + it->second.device + "'; " +
                   unplug_hint_);
  }
  blocks_.erase(it);  // closes the file
}

void BackendRegistry::RemoveNet(const std::string& id) {
  auto it = nets_.find(id);
  if (it == nets_.end()) throw NotFound("id: no netdev '" + id + "'");
  if (!it->second.device.empty()) {
    throw VmmError("id: netdev '" + id + "' is attached to device '" + it->second.device + "'; " + unplug_hint_);
  }
  nets_.erase(it);  // closes the tap
}

void BackendRegistry::RecordBlock(const std::string& node_name, const BlockFileConfig& file,
                                  const std::string& device) {
  blocks_[node_name] = {file, nullptr, device};
}

void BackendRegistry::RecordNet(const std::string& id, const std::string& ifname, const std::string& device) {
  nets_[id] = {ifname, nullptr, device};
}

void BackendRegistry::RequireAttachable(const DeviceAddRequest& request, const std::string& driver) const {
  bool block = request.kind == DeviceAddRequest::Kind::kBlock;
  bool is_block = blocks_.count(request.backend) > 0;
  bool is_net = nets_.count(request.backend) > 0;
  if (block ? is_net : is_block) {
    throw VmmError("driver: '" + driver + "' needs a " + (block ? "block" : "netdev") + " backend, but '" +
                   request.backend + "' is a " + (block ? "netdev backend (netdev_add)" : "block backend (blockdev-add)"));
  }
  if (!is_block && !is_net) {
    throw NotFound(request.backend_field + ": no backend '" + request.backend + "' (add it with " +
                   (block ? "blockdev-add" : "netdev_add") + " first)");
  }
  const std::string& holder = block ? blocks_.at(request.backend).device : nets_.at(request.backend).device;
  if (!holder.empty()) {
    throw VmmError(request.backend_field + ": " + (block ? "backend '" : "netdev '") + request.backend +
                   "' is already attached to '" + holder + "'");
  }
}

const BackendRegistry::Block* BackendRegistry::FindBlock(const std::string& name) const {
  auto it = blocks_.find(name);
  return it == blocks_.end() ? nullptr : &it->second;
}

const BackendRegistry::Net* BackendRegistry::FindNet(const std::string& id) const {
  auto it = nets_.find(id);
  return it == nets_.end() ? nullptr : &it->second;
}

Json BackendRegistry::DescribeUnattached() const {
  Json::Array block, net;
  for (const auto& [name, backend] : blocks_) {
    if (!backend.device.empty()) continue;
    block.push_back(Json(Json::Object{{"node-name", Json(name)},
                                      {"file", Json(backend.config.path)},
                                      {"read-only", Json(backend.config.read_only)},
                                      {"direct", Json(backend.config.direct)}}));
  }
  for (const auto& [id, backend] : nets_) {
    if (!backend.device.empty()) continue;
    net.push_back(Json(Json::Object{{"id", Json(id)}, {"ifname", Json(backend.ifname)}}));
  }
  return Json(Json::Object{{"block", Json(std::move(block))}, {"net", Json(std::move(net))}});
}

}  // namespace virga
