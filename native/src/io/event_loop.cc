#include "io/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "common/error.h"

namespace virga {

EventLoop::EventLoop()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!epoll_.valid()) throw ErrnoError("epoll_create1");
  if (!wake_.valid()) throw ErrnoError("eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &event) < 0) throw ErrnoError("epoll_ctl");
}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Start() { thread_ = std::thread([this] { Run(); }); }

void EventLoop::Stop() {
  {
    std::lock_guard guard(lock_);
    stopping_ = true;
    pause_changed_.notify_all();
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void EventLoop::Add(int fd, uint32_t events, Handler handler) {
  std::lock_guard guard(lock_);
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) < 0) throw ErrnoError("epoll_ctl add");
  handlers_[fd] = std::make_shared<Handler>(std::move(handler));
}

void EventLoop::Modify(int fd, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event);
}

void EventLoop::Remove(int fd) {
  std::lock_guard guard(lock_);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::Defer(std::function<void()> fn) {
  {
    std::lock_guard guard(lock_);
    deferred_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
}

void EventLoop::Pause() {
  RequestPause();
  WaitPaused();
}

void EventLoop::RequestPause() {
  std::lock_guard guard(lock_);
  pause_requested_ = true;
  if (!thread_.joinable()) return;  // not started: nothing runs anyway
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
}

void EventLoop::WaitPaused() {
  std::unique_lock guard(lock_);
  if (!thread_.joinable()) return;
  pause_changed_.wait(guard, [this] { return parked_ || stopping_; });
}

void EventLoop::Resume() {
  std::lock_guard guard(lock_);
  pause_requested_ = false;
  pause_changed_.notify_all();
}

void EventLoop::Run() {
  epoll_event events[32];
  for (;;) {
    {
      std::unique_lock guard(lock_);
      if (pause_requested_) {
        parked_ = true;
        pause_changed_.notify_all();
        pause_changed_.wait(guard, [this] { return !pause_requested_ || stopping_; });
        parked_ = false;
      }
      if (stopping_) return;
    }
    int count = ::epoll_wait(epoll_.get(), events, 32, -1);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return;
    for (int i = 0; i < count; ++i) {
      std::shared_ptr<Handler> handler;
      {
        std::lock_guard guard(lock_);
        if (stopping_) return;
        // Paused between two events: the rest stay pending in epoll.
        if (pause_requested_) break;
        if (events[i].data.fd == wake_.get()) {
          uint64_t count;
          [[maybe_unused]] ssize_t n = ::read(wake_.get(), &count, sizeof(count));
          continue;
        }
        auto it = handlers_.find(events[i].data.fd);
        if (it == handlers_.end()) continue;  // removed after epoll_wait returned
        handler = it->second;
      }
      (*handler)(events[i].events);
    }
    std::vector<std::function<void()>> deferred;
    {
      std::lock_guard guard(lock_);
      if (stopping_) return;
      if (pause_requested_) continue;
      deferred.swap(deferred_);
    }
    for (auto& fn : deferred) fn();
  }
}

}  // namespace virga
