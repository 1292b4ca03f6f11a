// QMP's backends, on either board (docs/devices.md, docs/q35.md): the
// files blockdev-add opens and the taps netdev_add opens, each by its
// name, and which device has it. An unattached backend's file or tap is
// held here; a device that takes one holds it until it gives it back. Not
// locked: each board calls it under its own lock.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "backends/block_file.h"
#include "backends/tap.h"
#include "common/error.h"
#include "common/fd.h"
#include "common/json.h"
#include "vm/hotplug.h"

namespace virga {

// An unknown device or backend (QMP.md's DeviceNotFound).
QmpError NotFound(const std::string& message);

class BackendRegistry {
 public:
  struct Block {
    BlockFileConfig config;
    std::unique_ptr<BlockFile> file;  // while no device has it
    std::string device;               // the device that has it; empty: none
  };
  struct Net {
    std::string ifname;
    std::unique_ptr<Tap> tap;  // while no device has it
    std::string device;
  };

  // `unplug_hint`: what to do before deleting an attached backend, as the
  // board's unplug works ("device_del it first", ...).
  explicit BackendRegistry(std::string unplug_hint) : unplug_hint_(std::move(unplug_hint)) {}

  // blockdev-add / netdev_add: opens the file or tap; refuses a name in use.
  void AddBlock(const std::string& node_name, const BlockFileConfig& file);
  void AddNet(const std::string& id, const std::string& ifname, UniqueFd fd, const std::string& fd_label);
  // blockdev-del / netdev_del: closes it; refuses an unknown or attached one.
  void RemoveBlock(const std::string& node_name);
  void RemoveNet(const std::string& id);
  // A command line's backend, already open and given to `device`.
  void RecordBlock(const std::string& node_name, const BlockFileConfig& file, const std::string& device);
  void RecordNet(const std::string& id, const std::string& ifname, const std::string& device);

  // device_add's checks on its backend: of `driver`'s kind, there, and free.
  void RequireAttachable(const DeviceAddRequest& request, const std::string& driver) const;
  // The backend device_add named (after RequireAttachable), for the board
  // to take its file or tap and set `device`.
  Block& block(const std::string& name) { return blocks_.at(name); }
  Net& net(const std::string& id) { return nets_.at(id); }
  // Null when there is none by that name.
  const Block* FindBlock(const std::string& name) const;
  const Net* FindNet(const std::string& id) const;
  void EraseBlock(const std::string& name) { blocks_.erase(name); }
  void EraseNet(const std::string& id) { nets_.erase(id); }

  // virga-query-devices' "backends": the unattached ones.
  Json DescribeUnattached() const;

 private:
  const std::string unplug_hint_;
  std::map<std::string, Block> blocks_;
  std::map<std::string, Net> nets_;
};

}  // namespace virga
