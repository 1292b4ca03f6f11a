// The core every machine type shares: KVM VM, guest RAM, direct kernel
// boot, the legacy devices (COM1, i8042, RTC, ACPI power button and
// reset), vCPU threads and the run state (start, pause, reset, snapshot
// state, dirty logging), assembled from one plain config. What differs
// between machine types is the board's (vm/board.h): vm/microvm.h and
// vm/q35.h. No Node types here.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chardev/chardev.h"
#include "devices/bus.h"
#include "devices/irq.h"
#include "devices/i8042.h"
#include "devices/rtc_cmos.h"
#include "devices/serial_8250.h"
#include "io/event_loop.h"
#include "kvm/system.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"
#include "vcpu/vcpu_thread.h"
#include "state/state_file.h"
#include "vm/board.h"
#include "vm/coalesced_writes.h"
#include "vm/exit_reason.h"
#include "vm/machine_config.h"
#include "vm/machine_layout.h"
#include "vm/microvm_devices.h"

namespace virga {

// Where a restored machine comes from (vm/snapshot.h opens it).
struct RestoreSource {
  std::string name;  // the snapshot directory, for errors
  const state::StateFile* state;
  int memory_fd;
  std::vector<FileRegion> memory_layout;
};

struct VcpuSummary {
  uint32_t index;
  uint32_t apic_id;
  pid_t thread_id;
  bool halted;
  RunStatsSnapshot stats;
};

class Machine {
 public:
  // `on_event` carries device events (BALLOON_CHANGED) from any thread.
  // With `restore`, the machine continues a snapshot instead of booting:
  // guest RAM mapped copy-on-write from its memory file, every vCPU and
  // device as saved. The config must describe the same machine; every
  // difference is named in the error.
  // With `incoming_migration`, neither: the machine waits, vCPUs parked,
  // for a live migration's pages and state (AcceptIncomingLayout, then
  // LoadIncomingState).
  Machine(const MachineConfig& config, ExitRequest on_exit, MicrovmDevices::Emit on_event = nullptr,
          const RestoreSource* restore = nullptr, bool incoming_migration = false);
  ~Machine();

  void Start(bool paused);
  void Pause();
  void Resume();
  // QMP system_reset: devices and vCPUs back to power-on state, the kernel
  // loaded afresh, guest RAM otherwise kept (as on a real reset button).
  void Reset();
  // QMP system_powerdown: press the ACPI power button.
  void PressPowerButton();
  bool paused() const { return paused_; }
  std::vector<VcpuSummary> Vcpus() const;
  const std::string& cmdline() const { return cmdline_; }
  std::string pty_path() const { return chardev_->pty_path(); }
  // Throws, naming the machine type, when its board cannot be saved yet
  // (before a migration starts copying RAM for nothing).
  void RequireSavable() const { board_->RequireSavable(); }
  // Hot-plug, backends and the balloon (main thread); a board without
  // them is refused by name.
  HotplugDevices& devices();
  const GuestMemory& memory() const { return *memory_; }
  // The whole machine's state (docs/snapshots.md) as a state file; the VM
  // must be paused (the error says so otherwise).
  std::vector<uint8_t> SaveState(const std::string& vmm_version);
  // What the machine is now (hot-plugged devices included).
  MachineLayout CurrentLayout() const;

  // Live migration's source: guest writes are logged (KVM's dirty log plus
  // the pages device emulation writes) until StopDirtyLog.
  void StartDirtyLog();
  void StopDirtyLog();
  // The pages of RAM region `index` dirtied since the last call, a bit per page.
  void CollectDirty(size_t index, std::vector<uint64_t>* bitmap);
  // Live migration's destination: the differences from the source's
  // machine (none: NICs take the source's MACs), then its state.
  std::vector<std::string> AcceptIncomingLayout(const MachineLayout& source);
  void LoadIncomingState(const state::StateFile& file);
  // VIRGA_MIGRATION_DUMP=<dir> (docs/migration.md): a paused machine's
  // vCPU registers and a hash of every page into <dir>/<role>-<pid>.vcpus
  // and .pages, for the two ends of a migration to be compared.
  void DumpForMigration(const std::string& role);
  void Destroy();

 private:
  void CreateLegacyDevices();
  // Memory and vCPUs, the outline's part every board shares.
  MachineLayout CoreLayout() const;
  // What the command line describes, to compare with a saved machine.
  MachineLayout ConfigLayout() const;
  // Kernel, initrd, command line and firmware tables into guest RAM; returns the entry.
  uint64_t LoadGuest();
  void CreateVcpus();
  // Lets the guest's UART output skip the exit per byte where KVM can queue it.
  void QueueTransmitWrites();
  void SetBootState(size_t index, uint64_t entry);
  void LoadState(const state::StateFile& file);
  // A new VM generation ID in guest memory; `announce` raises the GED
  // line so a running guest notices (a restored clone).
  void NewGenerationId(bool announce);
  // KVM's side of a paused machine (vCPUs, irqchip, PIT, kvmclock), read
  // once per pause: the TSC, the kvmclock and a LAPIC timer's current count
  // run on with host time even while the vCPUs are stopped, and two
  // snapshots of one pause must be the same machine.
  struct KvmState {
    std::vector<state::ByteWriter> vcpus;
    state::ByteWriter irqchip, pit, clock;
  };
  const KvmState& PausedKvmState();
  void ReportExit(const ExitReason& reason);

  MachineConfig config_;
  ExitRequest on_exit_;
  std::atomic<bool> exit_reported_{false};
  kvm::System system_;
  kvm::Vm vm_;
  std::unique_ptr<GuestMemory> memory_;
  Bus pio_;
  Bus mmio_;
  EventLoop loop_;
  std::unique_ptr<Chardev> chardev_;
  std::unique_ptr<IrqLine> com1_irq_;
  std::unique_ptr<IrqLine> keyboard_irq_;
  std::unique_ptr<IrqLine> power_button_irq_;
  std::unique_ptr<IrqLine> vmgenid_irq_;
  std::shared_ptr<Serial8250> serial_;
  std::shared_ptr<I8042> i8042_;
  std::shared_ptr<RtcCmos> rtc_;
  std::unique_ptr<Board> board_;
  std::vector<std::unique_ptr<VcpuThread>> vcpus_;
  std::unique_ptr<CoalescedWrites> coalesced_;
  std::vector<uint32_t> apic_ids_;           // online vCPUs
  std::vector<uint32_t> possible_apic_ids_;  // up to maxcpus
  // Power-on state captured at creation, restored by Reset.
  std::vector<kvm_sregs> initial_sregs_;
  std::vector<kvm_lapic_state> initial_lapics_;
  std::vector<kvm_irqchip> initial_irqchips_;
  kvm_pit_state2 initial_pit_{};
  std::string cmdline_;
  uint8_t generation_id_[16] = {};
  bool generation_id_written_ = false;
  std::optional<KvmState> paused_kvm_state_;
  bool dirty_logging_ = false;
  mutable std::mutex lifecycle_;
  bool paused_ = false;
  bool started_ = false;
  bool destroyed_ = false;
};

}  // namespace virga
