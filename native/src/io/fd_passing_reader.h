// Reads a connected unix stream socket with recvmsg so that file
// descriptors sent alongside the bytes (SCM_RIGHTS, as QMP's getfd needs)
// are kept instead of silently closed, which is what a plain read() (and
// so Node's net module) does with them. One thread per connection; the
// reader waits while its consumer has asked it to pause.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/fd.h"

namespace virga {

class FdPassingReader {
 public:
  // `data` with the descriptors that arrived with it (now owned by the callee).
  using OnData = std::function<void(std::vector<uint8_t> data, std::vector<int> fds)>;
  using OnClose = std::function<void(int error)>;

  // Takes a duplicate of `fd`; the original stays with its owner.
  FdPassingReader(int fd, OnData on_data, OnClose on_close);
  ~FdPassingReader();

  void Start();
  void SetPaused(bool paused);
  void Stop();

 private:
  void Main();

  UniqueFd fd_;
  OnData on_data_;
  OnClose on_close_;
  std::thread thread_;
  std::mutex lock_;
  std::condition_variable changed_;
  bool paused_ = false;
  bool stopping_ = false;
};

}  // namespace virga
