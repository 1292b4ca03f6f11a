// A board's device I/O threads (one EventLoop per device), which follow
// the VM's run state together: held by -S and QMP stop, joined at the end.
// A device hot-plugged later joins in the state the others are in, and one
// unplugged leaves (from whichever thread saw the guest let go of it).
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "io/event_loop.h"

namespace virga {

class IoThreads {
 public:
  // Before Start, or while the VM runs (hot-plug): then started at once,
  // held if the others are.
  void Add(std::shared_ptr<EventLoop> loop) {
    std::lock_guard guard(lock_);
    if (started_) {
      if (paused_) loop->Pause();
      loop->Start();
    }
    loops_.push_back(std::move(loop));
  }
  // Stops and joins `loop`'s thread.
  void Remove(const std::shared_ptr<EventLoop>& loop) {
    {
      std::lock_guard guard(lock_);
      loops_.erase(std::remove(loops_.begin(), loops_.end(), loop), loops_.end());
    }
    loop->Stop();
  }

  void Start(bool paused) {
    std::lock_guard guard(lock_);
    started_ = true;
    paused_ = paused;
    // -S: held like a QMP stop, so the first cont resumes the same way.
    if (paused) {
      for (auto& loop : loops_) loop->Pause();
    }
    for (auto& loop : loops_) loop->Start();
  }
  void Pause() {
    std::lock_guard guard(lock_);
    paused_ = true;
    // Asked all at once, then awaited: one slow device does not delay the others' stop.
    for (auto& loop : loops_) loop->RequestPause();
    for (auto& loop : loops_) loop->WaitPaused();
  }
  void Resume() {
    std::lock_guard guard(lock_);
    paused_ = false;
    for (auto& loop : loops_) loop->Resume();
  }
  void Stop() {
    std::lock_guard guard(lock_);
    for (auto& loop : loops_) loop->Stop();
  }

 private:
  std::mutex lock_;
  std::vector<std::shared_ptr<EventLoop>> loops_;
  bool started_ = false;
  bool paused_ = false;
};

}  // namespace virga
