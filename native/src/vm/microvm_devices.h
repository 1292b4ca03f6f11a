// The microvm's virtio devices and their backends: the fixed slot layout
// (docs/devices.md), the disks, taps and balloon behind it, and hot-plug.
// The VM process owns every backend here, fds included, so a control plane
// that restarts loses nothing. Called from the VM process's main thread;
// the devices themselves run on their slots' I/O threads.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "arch/x86_64/layout.h"
#include "backends/block_file.h"
#include "backends/tap.h"
#include "common/error.h"
#include "common/json.h"
#include "io/event_loop.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/mmio_transport.h"
#include "virtio/net.h"
#include "vm/backend_registry.h"
#include "vm/hotplug.h"
#include "vm/machine_layout.h"

namespace virga {

struct DiskConfig {
  uint32_t slot;
  std::string id;         // the -device id
  std::string node_name;  // the -drive id
  BlockFileConfig file;
};

struct NicConfig {
  uint32_t slot;
  std::string id;      // the -device id
  std::string netdev;  // the -netdev id
  std::string ifname;  // or:
  int fd = -1;         // an inherited tap fd (-netdev fd=)
  std::optional<MacAddress> mac;
};

struct BalloonDeviceConfig {
  std::string id;
  virtio::BalloonConfig options;
};

// "52:56:..:.." ↔ bytes.
std::string FormatMac(const MacAddress& mac);
std::optional<MacAddress> ParseMac(const std::string& text);
// The MAC of NIC slot `slot` when none is given: locally administered,
// stable for the VM's identity (its -name, else its QMP socket path).
MacAddress DerivedMac(const std::string& identity, uint32_t slot);

// QMP's balloon, on either board: DeviceNotActive until the guest's driver
// is up; the target in bytes of guest memory; BALLOON_CHANGED's data once
// the guest has got there (nothing before); query-balloon's answer.
void RequireBalloonReady(const virtio::Balloon* balloon);
void SetBalloonBytes(virtio::Balloon& balloon, uint64_t bytes, uint64_t memory_bytes);
std::optional<Json> BalloonChanged(const virtio::Balloon& balloon, uint32_t actual_pages, uint64_t memory_bytes);
Json QueryBalloonJson(virtio::Balloon& balloon, uint64_t memory_bytes);

class MicrovmDevices : public HotplugDevices {
 public:
  // Wraps a device in a virtio-mmio slot (its transport, I/O thread and
  // interrupt line); `make` builds the device for that slot's I/O thread.
  using AddSlot = std::function<virtio::MmioTransport*(
      uint32_t slot,
      const std::function<std::shared_ptr<virtio::VirtioDevice>(const std::shared_ptr<EventLoop>&)>& make)>;

  // A NIC's MAC is its mac=, else the one derived from `identity`. When
  // restoring (`saved`), its guest keeps the MAC it read at boot and the
  // network sees mac= if given, else what it saw when the snapshot was
  // taken; an empty slot's is the one derived from `identity`.
  MicrovmDevices(const std::vector<DiskConfig>& disks, const std::vector<NicConfig>& nics,
                 const std::optional<BalloonDeviceConfig>& balloon, const std::string& identity,
                 const MachineLayout* saved, uint64_t memory_bytes, const AddSlot& add_slot, Emit emit);

  void AddBlockBackend(const std::string& node_name, const BlockFileConfig& file) override;
  void RemoveBlockBackend(const std::string& node_name) override;
  void AddNetBackend(const std::string& id, const std::string& ifname, UniqueFd fd,
                     const std::string& fd_label) override;
  void RemoveNetBackend(const std::string& id) override;
  void AddDevice(const DeviceAddRequest& request) override;
  // Microvm unplug is synchronous and closes the backend too.
  void DeleteDevice(const std::string& id) override;

  void SetBalloonTarget(uint64_t bytes) override;
  Json QueryBalloon() override;
  // virga-query-devices (docs/devices.md).
  Json Describe() const override;
  // What fills each slot now (hot-plugged devices included), for a snapshot.
  void FillLayout(MachineLayout* layout) const;
  // An incoming migration: each NIC takes the source's guest and wire MACs.
  void AdoptMacs(const MachineLayout& layout);

 private:
  struct SlotState {
    std::string device_id;  // empty: free
    std::string backend;
  };

  uint32_t PickSlot(const DeviceAddRequest& request, uint32_t count, const std::vector<SlotState>& states,
                    const char* kind_name) const;
  void OnBalloonActual(uint32_t actual_pages);

  mutable std::mutex lock_;
  const uint64_t memory_bytes_;
  const Emit emit_;
  std::vector<std::shared_ptr<virtio::Block>> blocks_;
  std::vector<std::shared_ptr<virtio::Net>> nets_;
  std::vector<virtio::MmioTransport*> block_transports_, net_transports_;
  std::vector<SlotState> block_slots_, net_slots_;
  // A microvm unplug closes the backend too: nothing to wait for.
  BackendRegistry backends_{"device_del it first"};
  std::shared_ptr<virtio::Balloon> balloon_;
  virtio::MmioTransport* balloon_transport_ = nullptr;
  std::string balloon_id_;
  virtio::BalloonConfig balloon_options_;
};

}  // namespace virga
