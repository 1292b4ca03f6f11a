#include "vm/microvm.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86_64/layout.h"
#include "common/error.h"
#include "common/hex.h"

namespace virga {

MicrovmBoard::MicrovmBoard(const MachineConfig& config, MicrovmDevices::Emit on_event)
    : config_(config), on_event_(on_event ? std::move(on_event) : [](const std::string&, Json) {}) {}

MicrovmBoard::~MicrovmBoard() = default;

void MicrovmBoard::CreateDevices(BoardContext& context, const MachineLayout* saved) {
  // Fixed slot layout (docs/devices.md) so hot-plug fills slots the guest
  // already knows about, at addresses that never move.
  devices_ = std::make_unique<MicrovmDevices>(
      config_.disks, config_.nics, config_.balloon, config_.identity, saved, config_.memory_bytes,
      [this, &context](uint32_t index, const auto& make) { return AddSlot(context, index, make); }, on_event_);
}

virtio::MmioTransport* MicrovmBoard::AddSlot(
    BoardContext& context, uint32_t index,
    const std::function<std::shared_ptr<virtio::VirtioDevice>(const std::shared_ptr<EventLoop>&)>& make) {
  Slot slot;
  slot.base = x86::kVirtioMmioBase + index * x86::kVirtioMmioStride;
  slot.loop = std::make_shared<EventLoop>();
  io_threads_.Add(slot.loop);
  slot.irq = std::make_unique<IrqLine>(index == x86::kBalloonSlot ? x86::kBalloonGsi : x86::kVirtioFirstGsi + index);
  slot.resample.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!slot.resample.valid()) throw ErrnoError("eventfd for a virtio-mmio line's resample");
  context.vm.RegisterResampleIrqfd(slot.irq->fd(), slot.irq->gsi(), slot.resample.get());
  slot.transport = std::make_shared<virtio::MmioTransport>(make(slot.loop), &context.memory, slot.irq.get());
  // Served by the slot's own I/O thread, which also raises the line: the
  // EOI of a busy NIC never waits for another device's work.
  int resample = slot.resample.get();
  virtio::MmioTransport* transport = slot.transport.get();
  slot.loop->Add(resample, EPOLLIN, [resample, transport](uint32_t) {
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(resample, &count, sizeof(count));
    transport->LineLowered();
  });
  context.mmio.Insert(slot.base, x86::kVirtioMmioStride, slot.transport);
  const auto& fds = slot.transport->notify_fds();
  for (uint16_t q = 0; q < fds.size(); ++q) {
    context.vm.RegisterIoeventfd(fds[q].get(), slot.base + virtio::MmioTransport::kQueueNotifyOffset, 4, q, false);
  }
  slot.transport->ServeNotifications(*slot.loop);
  slots_.push_back(std::move(slot));
  return slots_.back().transport.get();
}

void MicrovmBoard::ExtendCmdline(std::string* cmdline) const {
  for (const auto& slot : slots_) {
    // Kernels built the StratoVirt/Firecracker way find virtio-mmio devices only from these.
    *cmdline += (cmdline->empty() ? "" : " ") + std::string("virtio_mmio.device=4K@") + Hex(slot.base) + ":" +
                std::to_string(slot.irq->gsi());
  }
}

void MicrovmBoard::DescribeAcpi(acpi::AcpiLayout* layout) const {
  for (const auto& slot : slots_) layout->virtio_slots.push_back({slot.base, x86::kVirtioMmioStride, slot.irq->gsi()});
}

void MicrovmBoard::Start(bool paused) { io_threads_.Start(paused); }

void MicrovmBoard::Pause() { io_threads_.Pause(); }

void MicrovmBoard::Resume() { io_threads_.Resume(); }

void MicrovmBoard::Stop() { io_threads_.Stop(); }

void MicrovmBoard::Reset() {
  for (auto& slot : slots_) slot.transport->Reset();
}

void MicrovmBoard::FillConfigLayout(MachineLayout* layout) const {
  for (const DiskConfig& disk : config_.disks) {
    auto& d = layout->disks[disk.slot];
    d.present = true;
    struct stat st {};
    if (::stat(disk.file.path.c_str(), &st) == 0) d.bytes = static_cast<uint64_t>(st.st_size) / 512 * 512;
    d.read_only = disk.file.read_only;
  }
  for (uint32_t slot = 0; slot < x86::kNetSlots; ++slot) layout->nics[slot].mac_given = false;
  for (const NicConfig& nic : config_.nics) {
    layout->nics[nic.slot].present = true;
    if (nic.mac) {
      layout->nics[nic.slot].mac = *nic.mac;
      layout->nics[nic.slot].mac_given = true;
    }
  }
  if (config_.balloon) {
    layout->balloon = true;
    layout->balloon_deflate_on_oom = config_.balloon->options.deflate_on_oom;
    layout->balloon_free_page_reporting = config_.balloon->options.free_page_reporting;
  }
}

void MicrovmBoard::FillLayout(MachineLayout* layout) const { devices_->FillLayout(layout); }

void MicrovmBoard::AdoptIncoming(const MachineLayout& source) { devices_->AdoptMacs(source); }

void MicrovmBoard::Save(state::StateFileWriter& file) const {
  for (auto& slot : slots_) {
    state::ByteWriter out;
    out.U64(slot.base);
    slot.transport->SaveState(out);
    file.Section("SLOT", out);
  }
}

void MicrovmBoard::Load(const state::StateFile& file) {
  if (file.Count("SLOT") != slots_.size()) {
    throw state::StateError("it holds " + std::to_string(file.Count("SLOT")) + " device slots, this machine has " +
                            std::to_string(slots_.size()));
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    state::ByteReader in = file.Section("SLOT", i);
    uint64_t base = in.U64();
    if (base != slots_[i].base) throw state::StateError("its device slots are laid out differently");
    slots_[i].transport->RestoreState(in);
    in.ExpectEnd();
    // The irqchip is restored already; the line follows the saved status.
    slots_[i].transport->LineLowered();
    // What the driver posted before the snapshot is served once the I/O threads run.
    slots_[i].transport->KickQueues();
  }
}

}  // namespace virga
