// One host thread per vCPU, an explicit state machine driven by requests:
// running <-> paused, then exited. A request kicks the thread out of KVM_RUN
// with a signal plus kvm_run.immediate_exit, so it cannot be missed even if
// it lands just before the thread re-enters the guest. A paused vCPU has no
// I/O half done: the last exit is completed inside KVM before it parks.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "devices/bus.h"
#include "kvm/vcpu.h"
#include "vcpu/run_stats.h"
#include "vm/coalesced_writes.h"
#include "vm/exit_reason.h"

namespace virga {

class VcpuThread {
 public:
  enum class State { kCreated, kRunning, kPaused, kExited };

  VcpuThread(uint32_t index, std::unique_ptr<kvm::Vcpu> vcpu, const Bus* pio, const Bus* mmio, ExitRequest on_exit);
  ~VcpuThread();

  void Start(bool paused);
  // Both return once the thread has reached the state (or exited).
  void Pause();
  void Resume();
  // The same in two halves, so a machine asks all its vCPUs at once and
  // then waits: each is scheduled once, not one after the other.
  void RequestPause();
  void WaitPaused();
  void RequestResume();
  void WaitRunning();
  void Stop();

  uint32_t index() const { return index_; }
  pid_t thread_id() const { return tid_.load(); }
  State state();
  kvm::Vcpu& vcpu() { return *vcpu_; }
  RunStatsSnapshot run_stats() const { return stats_.Read(); }
  // Queued writes to replay before each exit is handled; set before Start.
  void set_coalesced_writes(CoalescedWrites* writes) { coalesced_ = writes; }

  // Installs the no-op handler for the kick signal; call once per process.
  static void InstallKickHandler();

 private:
  void Main();
  void Kick();
  // Returns false when the VM must stop (exit reported).
  bool HandleExit();
  // Completes an exit already handled (KVM_RUN with immediate_exit) before
  // the thread parks. False when the VM must stop.
  bool CompletePendingIo();
  void HandleIo(kvm_run* run);
  void HandleMmio(kvm_run* run);
  // " at rip ... (registers)" for a log line; "" if they cannot be read.
  std::string CpuStateForLog() const;

  uint32_t index_;
  std::unique_ptr<kvm::Vcpu> vcpu_;
  const Bus* pio_;
  const Bus* mmio_;
  ExitRequest on_exit_;
  CoalescedWrites* coalesced_ = nullptr;
  RunStats stats_;

  std::mutex lock_;
  std::condition_variable changed_;
  State state_ = State::kCreated;
  State requested_ = State::kRunning;
  std::thread thread_;
  pthread_t pthread_{};
  std::atomic<pid_t> tid_{0};
};

}  // namespace virga
