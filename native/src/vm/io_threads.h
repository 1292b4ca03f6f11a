// A board's device I/O threads (one EventLoop per device), which follow
// the VM's run state together: held by -S and QMP stop, joined at the end.
#pragma once

#include <memory>
#include <vector>

#include "io/event_loop.h"

namespace virga {

class IoThreads {
 public:
  void Add(std::shared_ptr<EventLoop> loop) { loops_.push_back(std::move(loop)); }

  void Start(bool paused) {
    // -S: held like a QMP stop, so the first cont resumes the same way.
    if (paused) {
      for (auto& loop : loops_) loop->Pause();
    }
    for (auto& loop : loops_) loop->Start();
  }
  void Pause() {
    // Asked all at once, then awaited: one slow device does not delay the others' stop.
    for (auto& loop : loops_) loop->RequestPause();
    for (auto& loop : loops_) loop->WaitPaused();
  }
  void Resume() {
    for (auto& loop : loops_) loop->Resume();
  }
  void Stop() {
    for (auto& loop : loops_) loop->Stop();
  }

 private:
  std::vector<std::shared_ptr<EventLoop>> loops_;
};

}  // namespace virga
