// The VM's I/O thread: one epoll loop serving virtqueue ioeventfds, serial
// input and socket accepts. Handlers run on this thread only.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/fd.h"

namespace virga {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  EventLoop();
  ~EventLoop();

  void Start();
  void Stop();  // joins the thread; idempotent
  void Add(int fd, uint32_t events, Handler handler);
  void Modify(int fd, uint32_t events);
  void Remove(int fd);
  // Runs fn on the loop's thread soon; for work that must not run under the caller's locks.
  void Defer(std::function<void()> fn);
  // Returns once the thread has finished the handler it was running and
  // dispatches nothing more until Resume: a paused VM's devices neither
  // touch guest memory nor raise interrupts. Events wait (level-triggered)
  // and are handled after Resume. Not from the loop's own thread.
  void Pause();
  void Resume();
  // Pause in two halves, so several loops are asked at once, then awaited.
  void RequestPause();
  void WaitPaused();

 private:
  void Run();

  UniqueFd epoll_;
  UniqueFd wake_;
  std::mutex lock_;
  std::map<int, std::shared_ptr<Handler>> handlers_;
  std::vector<std::function<void()>> deferred_;
  std::thread thread_;
  bool stopping_ = false;
  bool pause_requested_ = false;
  bool parked_ = false;
  std::condition_variable pause_changed_;
};

}  // namespace virga
