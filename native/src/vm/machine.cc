#include "vm/machine.h"

#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "arch/x86_64/acpi/tables.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/kernel_loader.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "common/error.h"
#include "devices/acpi_pm_registers.h"
#include "memory/file_backing.h"
#include "memory/mem_path.h"
#include "vm/microvm.h"
#include "vm/q35.h"
#include "vm/vcpu_state.h"

namespace virga {

namespace {
constexpr uint16_t kCom1Port = 0x3f8;
}  // namespace

namespace {

std::unique_ptr<Board> MakeBoard(const MachineConfig& config, MicrovmDevices::Emit on_event) {
  switch (config.type) {
    case MachineType::kMicrovm: return std::make_unique<MicrovmBoard>(config, std::move(on_event));
    case MachineType::kQ35: return std::make_unique<Q35Board>(config, std::move(on_event));
  }
  throw VmmError("unknown machine type");
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

}  // namespace

Machine::Machine(const MachineConfig& config, ExitRequest on_exit, MicrovmDevices::Emit on_event,
                 const RestoreSource* restore, bool incoming_migration)
    : config_(config), on_exit_(std::move(on_exit)), system_(kvm::System::Open()), vm_(system_) {
  VcpuThread::InstallKickHandler();
  board_ = MakeBoard(config, std::move(on_event));
  // Before anything is built: a board that cannot be saved cannot be restored either.
  if (restore != nullptr || incoming_migration) board_->RequireSavable();
  std::optional<MachineLayout> saved;
  if (restore != nullptr) {
    state::ByteReader section = restore->state->Section("MACH");
    saved = MachineLayout::Decode(section);
    std::vector<std::string> differences = LayoutDifferences(*saved, ConfigLayout());
    if (!differences.empty()) {
      throw VmmError("the command line does not describe the machine saved in " + restore->name + ": " +
                     Join(differences, "; "));
    }
    // A snapshot's RAM is its memory file, mapped copy-on-write; the
    // command line refuses -mem-share and -mem-path with -incoming file:.
    memory_ = std::make_unique<GuestMemory>(
        config.memory_bytes, x86::kMmioHoleStart,
        std::make_unique<SnapshotBacking>(restore->memory_fd, restore->memory_layout));
  } else if (!config.mem_path.empty()) {
    memory_ = std::make_unique<GuestMemory>(config.memory_bytes, x86::kMmioHoleStart,
                                            OpenMemPath(config.mem_path, config.memory_bytes, config.mem_share));
  } else if (config.mem_share) {
    memory_ = std::make_unique<GuestMemory>(config.memory_bytes, x86::kMmioHoleStart,
                                            MakeSharedMemory(config.memory_bytes));
  } else {
    memory_ = std::make_unique<GuestMemory>(config.memory_bytes, x86::kMmioHoleStart);
  }
  // Guest RAM goes to KVM before the irqchip exists: measured on PVM, a
  // memory slot added after KVM_CREATE_IRQCHIP takes 4-7 ms (the update
  // then waits for a grace period), before it 0.1 ms.
  for (const auto& region : memory_->regions()) {
    vm_.SetUserMemoryRegion(region.slot, region.guest_base, region.size, region.host, 0);
  }
  vm_.SetIdentityMapAddr(x86::kIdentityMapAddr);
  vm_.SetTssAddr(x86::kTssAddr);
  vm_.CreateIrqchip();
  vm_.CreatePit2();
  for (uint32_t i = 0; i < config.max_cpus; ++i) possible_apic_ids_.push_back(x86::ApicIdFor(config.topology, i));
  apic_ids_.assign(possible_apic_ids_.begin(), possible_apic_ids_.begin() + config.cpus);
  chardev_ = std::make_unique<Chardev>(config.serial);
  CreateLegacyDevices();
  BoardContext context{vm_, *memory_, pio_, mmio_, [this](const ExitReason& reason) { ReportExit(reason); }};
  board_->CreateDevices(context, saved ? &*saved : nullptr);
  // A restored or migrated machine's kernel is in its RAM already (or on
  // its way); a later system_reset loads it afresh, as for any VM.
  bool boots = restore == nullptr && !incoming_migration;
  uint64_t entry = boots ? LoadGuest() : 0;
  // From here the guest, resets and later loads write RAM.
  memory_->ForgetKnownZero();
  CreateVcpus();
  QueueTransmitWrites();
  if (boots) {
    for (size_t i = 0; i < vcpus_.size(); ++i) SetBootState(i, entry);
  }
  for (uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
    initial_irqchips_.push_back(vm_.GetIrqchip(chip));
  }
  initial_pit_ = vm_.GetPit2();
  if (restore != nullptr) {
    try {
      LoadState(*restore->state);
    } catch (const std::exception& e) {
      throw VmmError("restoring from " + restore->name, e);
    }
    // Every restore is a clone of the snapshot's VM: its guest learns it
    // (ACPI VMGenID) and reseeds its random number generator.
    NewGenerationId(true);
  }
}

Machine::~Machine() { Destroy(); }

void Machine::CreateLegacyDevices() {
  com1_irq_ = std::make_unique<IrqLine>(x86::kComIrq);
  vm_.RegisterIrqfd(com1_irq_->fd(), com1_irq_->gsi());
  serial_ = std::make_shared<Serial8250>(chardev_.get(), com1_irq_.get());
  pio_.Insert(kCom1Port, 8, serial_);

  auto report = [this](const ExitReason& reason) { ReportExit(reason); };
  // 0x60..0x64 as one range: data at offset 0, status/command at offset 4.
  keyboard_irq_ = std::make_unique<IrqLine>(x86::kKeyboardIrq);
  vm_.RegisterIrqfd(keyboard_irq_->fd(), keyboard_irq_->gsi());
  i8042_ = std::make_shared<I8042>(report, keyboard_irq_.get());
  pio_.Insert(I8042::kDataPort, 5, i8042_);
  rtc_ = std::make_shared<RtcCmos>();
  pio_.Insert(RtcCmos::kBasePort, 2, rtc_);
  power_button_irq_ = std::make_unique<IrqLine>(x86::kPowerButtonGsi);
  vm_.RegisterIrqfd(power_button_irq_->fd(), power_button_irq_->gsi());
  vmgenid_irq_ = std::make_unique<IrqLine>(x86::kVmGenIdGsi);
  vm_.RegisterIrqfd(vmgenid_irq_->fd(), vmgenid_irq_->gsi());
  pio_.Insert(x86::kSleepControlPort, AcpiPmRegisters::kSize, std::make_shared<AcpiPmRegisters>(report));
}

HotplugDevices& Machine::devices() {
  HotplugDevices* devices = board_->hotplug_devices();
  if (devices == nullptr) {
    throw VmmError(std::string("devices: the ") + board_->name() +
                   " machine has no hot-plug, backends or balloon yet (docs/q35.md)");
  }
  return *devices;
}

MachineLayout Machine::CoreLayout() const {
  MachineLayout layout;
  layout.memory_bytes = config_.memory_bytes;
  layout.cpus = config_.cpus;
  layout.max_cpus = config_.max_cpus;
  layout.sockets = config_.topology.sockets;
  layout.cores = config_.topology.cores;
  layout.threads = config_.topology.threads;
  return layout;
}

MachineLayout Machine::ConfigLayout() const {
  MachineLayout layout = CoreLayout();
  board_->FillConfigLayout(&layout);
  return layout;
}

uint64_t Machine::LoadGuest() {
  const MachineConfig& config = config_;
  x86::LoadedKernel kernel = x86::LoadKernel(*memory_, config.kernel);
  uint64_t entry = 0;
  if (config.boot_entry == x86::BootEntry::kPvh) {
    if (kernel.pvh_entry == 0) throw VmmError("kernel " + config.kernel + " has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
    entry = kernel.pvh_entry;
  } else {
    if (kernel.entry64 == 0) throw VmmError("kernel " + config.kernel + " has no 64-bit entry");
    entry = kernel.entry64;
  }

  x86::InitrdPlacement initrd;
  if (!config.initrd.empty()) {
    uint64_t max_address = 0x7fffffff;
    if (kernel.is_bzimage && kernel.setup_header.size() >= 0x22c - 0x1f1 + 4) {
      uint32_t initrd_max;
      std::memcpy(&initrd_max, kernel.setup_header.data() + (0x22c - 0x1f1), 4);
      if (initrd_max != 0) max_address = initrd_max;
    }
    initrd.address = x86::LoadInitrd(*memory_, config.initrd, kernel.end, max_address, &initrd.size);
  }

  cmdline_ = config.cmdline;
  board_->ExtendCmdline(&cmdline_);
  x86::WriteCmdline(*memory_, cmdline_);
  x86::WriteBootTables(*memory_);
  // A reset keeps the VM's generation ID: it is the same VM.
  if (!generation_id_written_) NewGenerationId(false);
  else memory_->Write(x86::kVmGenIdAddr, generation_id_, sizeof(generation_id_));

  // The IOAPIC id follows the last possible APIC id so they never clash.
  uint32_t ioapic_id = possible_apic_ids_.back() + 1;
  x86::WriteMpTable(*memory_, apic_ids_, ioapic_id);
  acpi::AcpiLayout acpi_layout{apic_ids_, possible_apic_ids_, ioapic_id, {}, x86::kPowerButtonGsi,
                               x86::kVmGenIdAddr, x86::kVmGenIdGsi};
  board_->DescribeAcpi(&acpi_layout);
  uint64_t rsdp = acpi::WriteAcpiTables(*memory_, acpi_layout);

  std::vector<x86::E820Entry> e820 = x86::BuildE820(*memory_);
  if (config.boot_entry == x86::BootEntry::kPvh) {
    x86::WritePvhStartInfo(*memory_, initrd, e820, rsdp);
  } else {
    x86::WriteBootParams(*memory_, kernel, cmdline_, initrd, e820, rsdp);
  }
  return entry;
}

void Machine::CreateVcpus() {
  std::vector<kvm_cpuid_entry2> supported = system_.SupportedCpuid();
  int mmap_size = system_.VcpuMmapSize();
  for (uint32_t i = 0; i < config_.cpus; ++i) {
    // The in-kernel LAPIC takes its id from the vCPU id.
    auto vcpu = std::make_unique<kvm::Vcpu>(vm_.CreateVcpuFd(apic_ids_[i]), mmap_size);
    vcpu->SetCpuid(x86::CpuidForVcpu(supported, config_.topology, i));
    initial_sregs_.push_back(vcpu->GetSregs());
    x86::SetupLapicLints(*vcpu);
    initial_lapics_.push_back(vcpu->GetLapic());
    vcpus_.push_back(std::make_unique<VcpuThread>(i, std::move(vcpu), &pio_, &mmio_,
                                                  [this](const ExitReason& reason) { ReportExit(reason); }));
  }
}

void Machine::QueueTransmitWrites() {
  if (system_.CheckExtension(KVM_CAP_COALESCED_PIO) <= 0) return;
  void* ring = vcpus_.front()->vcpu().coalesced_ring();
  if (ring == nullptr) return;
  // Only the transmit register: writing it has no effect the guest waits
  // for (it learns the byte went out by reading LSR, which exits and so
  // replays the queue first). With DLAB set the same port is the divisor
  // latch; that is still correct, as the LCR write that clears DLAB exits.
  // Saves one exit to this process per byte of console output: little on
  // PVM, where emulating the instruction costs more than the exit, much
  // under nested KVM, where each exit is an emulated world switch.
  vm_.RegisterCoalescedZone(kCom1Port, 1, true);
  coalesced_ = std::make_unique<CoalescedWrites>(ring, static_cast<size_t>(::sysconf(_SC_PAGESIZE)), &pio_, &mmio_);
  for (auto& vcpu : vcpus_) vcpu->set_coalesced_writes(coalesced_.get());
  CoalescedWrites* writes = coalesced_.get();
  serial_->SetTransmitWaiter([writes] { writes->DrainSoon(); });
  loop_.Add(writes->timer_fd(), EPOLLIN, [writes](uint32_t) { writes->OnTimer(); });
}

void Machine::SetBootState(size_t index, uint64_t entry) {
  kvm::Vcpu& vcpu = vcpus_[index]->vcpu();
  vcpu.SetSregs(initial_sregs_[index]);
  vcpu.SetLapic(initial_lapics_[index]);
  x86::SetupVcpuMsrsAndFpu(vcpu);
  if (index == 0) {
    vcpu.SetMpState(KVM_MP_STATE_RUNNABLE);
    x86::SetupBootCpu(vcpu, config_.boot_entry, entry);
  } else {
    // APs wait in KVM for the guest's INIT/SIPI.
    vcpu.SetMpState(KVM_MP_STATE_UNINITIALIZED);
  }
}

void Machine::Reset() {
  std::lock_guard guard(lifecycle_);
  if (destroyed_) return;
  for (auto& vcpu : vcpus_) vcpu->Pause();
  if (coalesced_) coalesced_->Drain();
  board_->Reset();
  for (const auto& chip : initial_irqchips_) vm_.SetIrqchip(chip);
  vm_.SetPit2(initial_pit_);
  // The ID the guest has now (its own, a clone's, or one that migrated in) survives the reset.
  memory_->Read(x86::kVmGenIdAddr, generation_id_, sizeof(generation_id_));
  generation_id_written_ = true;
  uint64_t entry = LoadGuest();
  for (size_t i = 0; i < vcpus_.size(); ++i) SetBootState(i, entry);
  paused_kvm_state_.reset();
  if (!paused_) {
    for (auto& vcpu : vcpus_) vcpu->Resume();
  }
}

void Machine::PressPowerButton() { power_button_irq_->Trigger(); }

void Machine::NewGenerationId(bool announce) {
  // A clone must never share its ID with the template or another clone.
  if (::getrandom(generation_id_, sizeof(generation_id_), 0) != static_cast<ssize_t>(sizeof(generation_id_))) {
    throw ErrnoError("getrandom for the VM generation ID");
  }
  memory_->Write(x86::kVmGenIdAddr, generation_id_, sizeof(generation_id_));
  generation_id_written_ = true;
  if (announce) vmgenid_irq_->Trigger();
}

MachineLayout Machine::CurrentLayout() const {
  MachineLayout layout = CoreLayout();
  board_->FillLayout(&layout);
  return layout;
}

std::vector<uint8_t> Machine::SaveState(const std::string& vmm_version) {
  std::lock_guard guard(lifecycle_);
  board_->RequireSavable();
  if (!paused_) throw VmmError("the VM must be paused to save its state");
  state::StateFileWriter file;
  state::ByteWriter machine;
  CurrentLayout().Encode(machine);
  file.Section("MACH", machine);
  const KvmState& kvm = PausedKvmState();
  for (const auto& vcpu : kvm.vcpus) file.Section("VCPU", vcpu);
  file.Section("IRQC", kvm.irqchip);
  file.Section("PIT2", kvm.pit);
  file.Section("CLCK", kvm.clock);
  state::ByteWriter uart, keyboard, rtc;
  serial_->SaveState(uart);
  file.Section("UART", uart);
  i8042_->SaveState(keyboard);
  file.Section("KBD", keyboard);
  rtc_->SaveState(rtc);
  file.Section("RTC", rtc);
  board_->Save(file);
  return file.Finish(vmm_version);
}

void Machine::StartDirtyLog() {
  std::lock_guard guard(lifecycle_);
  if (dirty_logging_) return;
  memory_->StartDirtyTracking();
  for (const auto& region : memory_->regions()) {
    vm_.SetUserMemoryRegion(region.slot, region.guest_base, region.size, region.host, KVM_MEM_LOG_DIRTY_PAGES);
  }
  dirty_logging_ = true;
}

void Machine::StopDirtyLog() {
  std::lock_guard guard(lifecycle_);
  if (!dirty_logging_) return;
  for (const auto& region : memory_->regions()) {
    vm_.SetUserMemoryRegion(region.slot, region.guest_base, region.size, region.host, 0);
  }
  memory_->StopDirtyTracking();
  dirty_logging_ = false;
}

void Machine::CollectDirty(size_t index, std::vector<uint64_t>* bitmap) {
  const MemoryRegion& region = memory_->regions().at(index);
  bitmap->assign((region.size / 4096 + 63) / 64, 0);
  vm_.GetDirtyLog(region.slot, bitmap);
  memory_->TakeDeviceDirty(index, bitmap);
}

std::vector<std::string> Machine::AcceptIncomingLayout(const MachineLayout& source) {
  std::vector<std::string> differences = LayoutDifferences(source, ConfigLayout(), "the source", WireMac::kKept);
  if (differences.empty()) board_->AdoptIncoming(source);
  return differences;
}

void Machine::LoadIncomingState(const state::StateFile& file) {
  std::lock_guard guard(lifecycle_);
  LoadState(file);
  DumpForMigration("destination");
}

void Machine::DumpForMigration(const std::string& role) {
  const char* dir = std::getenv("VIRGA_MIGRATION_DUMP");
  if (dir == nullptr || *dir == 0) return;
  std::string prefix = std::string(dir) + "/" + role + "-" + std::to_string(::getpid());
  std::vector<uint64_t> hashes;
  for (const MemoryRegion& region : memory_->regions()) {
    for (uint64_t page = 0; page < region.size; page += 4096) {
      // FNV-1a over 64-bit words: a changed byte changes the hash.
      uint64_t hash = 1469598103934665603ULL;
      const auto* words = reinterpret_cast<const uint64_t*>(region.host + page);
      for (size_t w = 0; w < 512; ++w) hash = (hash ^ words[w]) * 1099511628211ULL;
      hashes.push_back(hash);
    }
  }
  // Registers after pages: KVM writes "preempted" into a vCPU's steal-time
  // record in guest RAM when a thread that has the vCPU loaded (as these
  // reads do) is preempted. The source sent its pages before that could
  // happen; hashing them first keeps such a write out of the comparison.
  std::vector<uint32_t> msrs = system_.MsrIndexList();
  std::string text;
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    text += "vcpu " + std::to_string(i) + "\n" + DescribeVcpuState(vcpus_[i]->vcpu(), msrs);
  }
  auto write = [](const std::string& path, const void* data, size_t len) {
    FILE* f = std::fopen(path.c_str(), "wb");
    bool written = f != nullptr && std::fwrite(data, 1, len, f) == len;
    if (f != nullptr && std::fclose(f) != 0) written = false;
    if (!written) std::fprintf(stderr, "virga-vmm: VIRGA_MIGRATION_DUMP: cannot write %s\n", path.c_str());
  };
  write(prefix + ".vcpus", text.data(), text.size());
  write(prefix + ".pages", hashes.data(), hashes.size() * sizeof(uint64_t));
}

const Machine::KvmState& Machine::PausedKvmState() {
  if (paused_kvm_state_) return *paused_kvm_state_;
  KvmState kvm;
  std::vector<uint32_t> msrs = system_.MsrIndexList();
  for (auto& vcpu : vcpus_) {
    kvm.vcpus.emplace_back();
    SaveVcpuState(vcpu->vcpu(), msrs, kvm.vcpus.back());
  }
  for (uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
    kvm.irqchip.Pod(vm_.GetIrqchip(chip));
  }
  kvm.pit.Pod(vm_.GetPit2());
  kvm.clock.Pod(vm_.GetClock());
  paused_kvm_state_ = std::move(kvm);
  return *paused_kvm_state_;
}

void Machine::LoadState(const state::StateFile& file) {
  if (file.Count("VCPU") != vcpus_.size()) {
    throw state::StateError("it holds " + std::to_string(file.Count("VCPU")) + " vCPUs, this machine has " +
                            std::to_string(vcpus_.size()));
  }
  // The irqchip first: the LAPICs and devices restored next may raise lines into it.
  state::ByteReader irqchip = file.Section("IRQC");
  for (int i = 0; i < 3; ++i) vm_.SetIrqchip(irqchip.Pod<kvm_irqchip>());
  irqchip.ExpectEnd();
  state::ByteReader pit = file.Section("PIT2");
  vm_.SetPit2(pit.Pod<kvm_pit_state2>());
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    state::ByteReader in = file.Section("VCPU", i);
    RestoreVcpuState(vcpus_[i]->vcpu(), in);
  }
  // The kvmclock last among the clocks: the guest's time carries on from
  // the moment of the snapshot.
  state::ByteReader clock = file.Section("CLCK");
  vm_.SetClock(clock.Pod<kvm_clock_data>());
  state::ByteReader uart = file.Section("UART");
  serial_->RestoreState(uart);
  state::ByteReader keyboard = file.Section("KBD");
  i8042_->RestoreState(keyboard);
  state::ByteReader rtc = file.Section("RTC");
  rtc_->RestoreState(rtc);
  board_->Load(file);
}

void Machine::ReportExit(const ExitReason& reason) {
  // The first reason wins: a reset seen by two vCPUs is one event.
  if (exit_reported_.exchange(true)) return;
  on_exit_(reason);
}

void Machine::Start(bool paused) {
  std::lock_guard guard(lifecycle_);
  if (started_ || destroyed_) return;
  started_ = true;
  paused_ = paused;
  // -S: held like a QMP stop, so the first cont resumes the same way.
  if (paused) serial_->HoldBackend(true);
  chardev_->SetWritableHandler([this] { serial_->FlushTransmitter(); });
  chardev_->Attach(&loop_, [this](const uint8_t* data, size_t len) { return serial_->ReceiveInput(data, len); });
  loop_.Start();
  board_->Start(paused);
  for (auto& vcpu : vcpus_) vcpu->Start(paused);
}

void Machine::Pause() {
  std::lock_guard guard(lifecycle_);
  if (!started_ || destroyed_ || paused_) return;
  // Quiescent: vCPUs first (each completes its last exit before parking),
  // then the guest's queued console writes, then the board's I/O threads,
  // which finish what they are doing and touch nothing more, and the
  // console's backend. Guest RAM and every device's state hold still until
  // Resume. (The VM's own I/O thread keeps running: it accepts console
  // clients, and the UART takes nothing from it while held.)
  for (auto& vcpu : vcpus_) vcpu->RequestPause();
  for (auto& vcpu : vcpus_) vcpu->WaitPaused();
  if (coalesced_) coalesced_->Drain();
  board_->Pause();
  serial_->HoldBackend(true);
  paused_ = true;
}

void Machine::Resume() {
  std::lock_guard guard(lifecycle_);
  if (!started_ || destroyed_ || !paused_) return;
  serial_->HoldBackend(false);
  board_->Resume();
  for (auto& vcpu : vcpus_) vcpu->RequestResume();
  for (auto& vcpu : vcpus_) vcpu->WaitRunning();
  paused_ = false;
  paused_kvm_state_.reset();
}

std::vector<VcpuSummary> Machine::Vcpus() const {
  std::lock_guard guard(lifecycle_);
  std::vector<VcpuSummary> out;
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    out.push_back({vcpus_[i]->index(), apic_ids_[i], vcpus_[i]->thread_id(), false, vcpus_[i]->run_stats()});
  }
  return out;
}

void Machine::Destroy() {
  std::lock_guard guard(lifecycle_);
  if (destroyed_) return;
  destroyed_ = true;
  for (auto& vcpu : vcpus_) vcpu->Stop();
  if (coalesced_) coalesced_->Drain();
  chardev_->Detach();
  loop_.Stop();
  board_->Stop();
}

}  // namespace virga
