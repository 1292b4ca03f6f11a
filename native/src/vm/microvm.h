// The microvm board: fixed virtio-mmio slots (docs/devices.md) below the
// IOAPIC, each with its own I/O thread and interrupt line, announced to
// the guest both on the kernel command line and as LNRO0005 ACPI devices;
// the devices and their hot-plug live in vm/microvm_devices.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/fd.h"
#include "devices/irq.h"
#include "io/event_loop.h"
#include "virtio/mmio_transport.h"
#include "vm/board.h"
#include "vm/io_threads.h"
#include "vm/machine_config.h"
#include "vm/microvm_devices.h"

namespace virga {

class MicrovmBoard : public Board {
 public:
  MicrovmBoard(const MachineConfig& config, MicrovmDevices::Emit on_event);
  ~MicrovmBoard() override;

  const char* name() const override { return "microvm"; }
  void CreateDevices(BoardContext& context, const MachineLayout* saved) override;
  void ExtendCmdline(std::string* cmdline) const override;
  void DescribeAcpi(acpi::AcpiLayout* layout) const override;
  void Start(bool paused) override;
  void Pause() override;
  void Resume() override;
  void Stop() override;
  void Reset() override;
  void FillConfigLayout(MachineLayout* layout) const override;
  void FillLayout(MachineLayout* layout) const override;
  void Save(state::StateFileWriter& file) const override;
  void Load(const state::StateFile& file) override;
  void AdoptIncoming(const MachineLayout& source) override;
  HotplugDevices* hotplug_devices() override { return devices_.get(); }

 private:
  struct Slot {
    uint64_t base;
    // The slot's own I/O thread: a busy disk never delays another device,
    // the console or a vCPU. Shared with a device that watches its own fds
    // (a NIC's tap), which may outlive the slot (the MMIO bus holds it).
    std::shared_ptr<EventLoop> loop;
    std::unique_ptr<IrqLine> irq;  // a level line: a resample irqfd (devices/level_irq.h)
    UniqueFd resample;             // KVM signals it at the EOI that lowers the line
    std::shared_ptr<virtio::MmioTransport> transport;
  };

  virtio::MmioTransport* AddSlot(
      BoardContext& context, uint32_t index,
      const std::function<std::shared_ptr<virtio::VirtioDevice>(const std::shared_ptr<EventLoop>&)>& make);

  const MachineConfig config_;
  MicrovmDevices::Emit on_event_;
  std::vector<Slot> slots_;  // in slot order; the balloon's only when configured
  IoThreads io_threads_;
  std::unique_ptr<MicrovmDevices> devices_;
};

}  // namespace virga
