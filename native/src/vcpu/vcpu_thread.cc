#include "vcpu/vcpu_thread.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/error.h"
#include "common/hex.h"

namespace virga {

namespace {

int KickSignal() { return SIGRTMIN + 6; }

void IgnoreKick(int) {}

}  // namespace

void VcpuThread::InstallKickHandler() {
  struct sigaction action {};
  action.sa_handler = IgnoreKick;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  sigaction(KickSignal(), &action, nullptr);
}

VcpuThread::VcpuThread(uint32_t index, std::unique_ptr<kvm::Vcpu> vcpu, const Bus* pio, const Bus* mmio,
                       ExitRequest on_exit)
    : index_(index), vcpu_(std::move(vcpu)), pio_(pio), mmio_(mmio), on_exit_(std::move(on_exit)) {}

VcpuThread::~VcpuThread() { Stop(); }

void VcpuThread::Start(bool paused) {
  std::unique_lock guard(lock_);
  requested_ = paused ? State::kPaused : State::kRunning;
  thread_ = std::thread([this] { Main(); });
  pthread_ = thread_.native_handle();
  changed_.wait(guard, [this] { return state_ != State::kCreated; });
}

VcpuThread::State VcpuThread::state() {
  std::lock_guard guard(lock_);
  return state_;
}

void VcpuThread::Kick() {
  // The vCPU thread clears it after each KVM_RUN: both sides touch the
  // shared run page, so the accesses are atomic.
  __atomic_store_n(&vcpu_->run_state()->immediate_exit, 1, __ATOMIC_SEQ_CST);
  if (thread_.joinable()) pthread_kill(pthread_, KickSignal());
}

void VcpuThread::Pause() {
  RequestPause();
  WaitPaused();
}

void VcpuThread::Resume() {
  RequestResume();
  WaitRunning();
}

void VcpuThread::RequestPause() {
  std::unique_lock guard(lock_);
  if (state_ == State::kExited || state_ == State::kCreated) return;
  requested_ = State::kPaused;
  Kick();
}

void VcpuThread::WaitPaused() {
  std::unique_lock guard(lock_);
  if (state_ == State::kCreated) return;
  changed_.wait(guard, [this] { return state_ == State::kPaused || state_ == State::kExited; });
}

void VcpuThread::RequestResume() {
  std::unique_lock guard(lock_);
  if (state_ == State::kExited || state_ == State::kCreated) return;
  requested_ = State::kRunning;
  changed_.notify_all();
}

void VcpuThread::WaitRunning() {
  std::unique_lock guard(lock_);
  if (state_ == State::kCreated) return;
  changed_.wait(guard, [this] { return state_ == State::kRunning || state_ == State::kExited; });
}

void VcpuThread::Stop() {
  {
    std::unique_lock guard(lock_);
    requested_ = State::kExited;
    changed_.notify_all();
    if (thread_.joinable() && state_ != State::kExited) Kick();
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void VcpuThread::Main() {
  // Only the kick reaches this thread; process signals (SIGINT, SIGTERM)
  // stay with the main thread that owns shutdown.
  sigset_t mask;
  sigfillset(&mask);
  sigdelset(&mask, KickSignal());
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  tid_ = static_cast<pid_t>(::syscall(SYS_gettid));
  char name[16];
  snprintf(name, sizeof(name), "vcpu%u", index_);
  pthread_setname_np(pthread_self(), name);

  // The last KVM_RUN ended in an exit this thread handled: KVM finishes the
  // instruction (stores a port or MMIO read's value) only on the next entry.
  bool completion_pending = false;
  for (;;) {
    bool pausing;
    {
      std::lock_guard guard(lock_);
      pausing = requested_ == State::kPaused;
    }
    if (pausing && completion_pending) {
      // Quiescent pause: enter once more with immediate_exit, so KVM
      // completes the pending I/O and returns before running guest code;
      // registers read (or saved) while paused are then whole.
      if (!CompletePendingIo()) break;
      completion_pending = false;
    }
    {
      std::unique_lock guard(lock_);
      while (requested_ == State::kPaused) {
        stats_.Parked();
        if (state_ != State::kPaused) {
          state_ = State::kPaused;
          changed_.notify_all();
        }
        changed_.wait(guard);
      }
      if (requested_ == State::kExited) break;
      if (state_ != State::kRunning) {
        state_ = State::kRunning;
        changed_.notify_all();
      }
    }
    uint64_t entered_at = stats_.Entering();
    int result = vcpu_->Run();
    stats_.Returned(entered_at);
    __atomic_store_n(&vcpu_->run_state()->immediate_exit, 0, __ATOMIC_SEQ_CST);
    completion_pending = false;  // entering completed the last exit
    // Writes the guest made before this exit reach their devices first.
    if (coalesced_ != nullptr) {
      if (coalesced_->pending()) coalesced_->Drain();
      coalesced_->NoteExit();
    }
    if (result == -EINTR || result == -EAGAIN) {
      stats_.CountSignal();
      continue;
    }
    if (result < 0) {
      on_exit_({ExitKind::kError, "vCPU " + std::to_string(index_) + ": KVM_RUN failed: " + std::strerror(-result)});
      break;
    }
    bool keep_running = false;
    try {
      keep_running = HandleExit();
    } catch (const std::exception& e) {
      on_exit_({ExitKind::kError, "vCPU " + std::to_string(index_) + ": " + e.what()});
    }
    if (!keep_running) break;
    completion_pending = true;
  }
  std::lock_guard guard(lock_);
  state_ = State::kExited;
  changed_.notify_all();
}

bool VcpuThread::CompletePendingIo() {
  // A string instruction may need more exits before it completes; each is
  // handled as usual until KVM says -EINTR (nothing pending any more).
  for (int rounds = 0; rounds < 4096; ++rounds) {
    __atomic_store_n(&vcpu_->run_state()->immediate_exit, 1, __ATOMIC_SEQ_CST);
    int result = vcpu_->Run();
    __atomic_store_n(&vcpu_->run_state()->immediate_exit, 0, __ATOMIC_SEQ_CST);
    if (coalesced_ != nullptr && coalesced_->pending()) coalesced_->Drain();
    if (result == -EINTR || result == -EAGAIN) return true;
    if (result < 0) {
      on_exit_({ExitKind::kError, "vCPU " + std::to_string(index_) + ": KVM_RUN failed: " + std::strerror(-result)});
      return false;
    }
    try {
      if (!HandleExit()) return false;
    } catch (const std::exception& e) {
      on_exit_({ExitKind::kError, "vCPU " + std::to_string(index_) + ": " + e.what()});
      return false;
    }
  }
  return true;
}

void VcpuThread::HandleIo(kvm_run* run) {
  auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  // String I/O (rep outsb/insb) arrives as `count` consecutive items.
  for (uint32_t i = 0; i < run->io.count; ++i) {
    uint8_t* item = data + i * run->io.size;
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      pio_->Write(run->io.port, item, run->io.size);
    } else if (!pio_->Read(run->io.port, item, run->io.size)) {
      // No device: the floating ISA bus reads all ones.
      for (uint32_t b = 0; b < run->io.size; ++b) item[b] = 0xff;
    }
  }
}

void VcpuThread::HandleMmio(kvm_run* run) {
  uint32_t len = run->mmio.len > 8 ? 8 : run->mmio.len;
  if (run->mmio.is_write) {
    mmio_->Write(run->mmio.phys_addr, run->mmio.data, len);
  } else if (!mmio_->Read(run->mmio.phys_addr, run->mmio.data, len)) {
    for (uint32_t b = 0; b < len; ++b) run->mmio.data[b] = 0xff;
  }
}

std::string VcpuThread::CpuStateForLog() const {
  try {
    kvm_regs regs = vcpu_->GetRegs();
    kvm_sregs sregs = vcpu_->GetSregs();
    return " at rip " + Hex(regs.rip) + " (rsp " + Hex(regs.rsp) + ", cs " + Hex(sregs.cs.selector) + ", cr0 " +
           Hex(sregs.cr0) + ", cr3 " + Hex(sregs.cr3) + ", cr4 " + Hex(sregs.cr4) + ", efer " + Hex(sregs.efer) + ")";
  } catch (const std::exception&) {
    return "";
  }
}

bool VcpuThread::HandleExit() {
  kvm_run* run = vcpu_->run_state();
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      stats_.CountIo();
      HandleIo(run);
      return true;
    case KVM_EXIT_MMIO:
      stats_.CountMmio();
      HandleMmio(run);
      return true;
    case KVM_EXIT_HLT:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_SHUTDOWN:
      // Triple fault: what a PC does next is reset, and reset ends the VM.
      // Where the guest was is all there is to go on afterwards.
      on_exit_({ExitKind::kGuestReset, "vCPU " + std::to_string(index_) + " triple fault" + CpuStateForLog(), true});
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
        on_exit_({ExitKind::kGuestReset, "KVM system event: reset"});
      } else {
        on_exit_({ExitKind::kGuestShutdown, "KVM system event " + std::to_string(run->system_event.type)});
      }
      return false;
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string what = run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? "instruction emulation failed"
                                                                                 : "suberror " + std::to_string(run->internal.suberror);
      on_exit_({ExitKind::kError, "vCPU " + std::to_string(index_) + ": KVM internal error: " + what + CpuStateForLog()});
      return false;
    }
    case KVM_EXIT_FAIL_ENTRY:
      on_exit_({ExitKind::kError, "vCPU " + std::to_string(index_) + ": VM entry failed, hardware reason " +
                                      Hex(run->fail_entry.hardware_entry_failure_reason)});
      return false;
    default:
      on_exit_({ExitKind::kError, "vCPU " + std::to_string(index_) + ": unexpected KVM exit reason " +
                                      std::to_string(run->exit_reason)});
      return false;
  }
}

}  // namespace virga
