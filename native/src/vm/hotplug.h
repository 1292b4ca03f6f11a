// What QMP asks of a board's devices (docs/devices.md, docs/q35.md):
// backends (blockdev-add, netdev_add), hot-plug (device_add, device_del),
// the balloon and virga-query-devices. Each board answers in its own way:
// the microvm fills fixed virtio-mmio slots, q35 plugs virtio-pci
// functions into its root ports' slots. Called from the VM process's main
// thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "backends/block_file.h"
#include "common/json.h"
#include "common/fd.h"

namespace virga {

using MacAddress = std::array<uint8_t, 6>;

struct DeviceAddRequest {
  std::string id;
  enum class Kind { kBlock, kNet, kVfio } kind;
  std::optional<uint32_t> slot;  // from addr or lun; none: the first free one
  std::string slot_field;        // "addr" or "lun", for errors
  std::string backend;           // node-name / netdev id
  std::string backend_field;     // "id", "drive" or "netdev", for errors
  std::optional<MacAddress> mac;
  std::string bus;  // q35: the root port's id
  // vfio-pci: the host function, by address (DDDD:BB:SS.F) or sysfs directory.
  std::string host;
  std::string sysfsdev;
};

class HotplugDevices {
 public:
  // A QMP event for every client: {"event":NAME,"data":{...}}.
  using Emit = std::function<void(const std::string& name, Json data)>;

  virtual ~HotplugDevices() = default;

  virtual void AddBlockBackend(const std::string& node_name, const BlockFileConfig& file) = 0;
  virtual void RemoveBlockBackend(const std::string& node_name) = 0;
  // `fd_label` names an fd handed over with the request (getfd name).
  virtual void AddNetBackend(const std::string& id, const std::string& ifname, UniqueFd fd,
                             const std::string& fd_label) = 0;
  virtual void RemoveNetBackend(const std::string& id) = 0;
  virtual void AddDevice(const DeviceAddRequest& request) = 0;
  virtual void DeleteDevice(const std::string& id) = 0;

  // QMP balloon: the guest's target size in bytes, clamped to boot memory.
  virtual void SetBalloonTarget(uint64_t bytes) = 0;
  // {actual, target, memory, stats, stats-updated}; asks the guest for
  // fresh statistics on the way.
  virtual Json QueryBalloon() = 0;
  // virga-query-devices.
  virtual Json Describe() const = 0;
};

}  // namespace virga
