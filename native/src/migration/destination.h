// The destination side of live migration (docs/migration.md): the VM
// process started with -incoming tcp:/unix: waits (QMP answers, status
// inmigrate), checks the incoming machine against its own command line,
// takes the pages and the state, and reports; the VM process then runs the
// guest, or exits with the reason.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/fd.h"
#include "migration/channel.h"
#include "vm/machine.h"

namespace virga::migration {

class Destination {
 public:
  // `notify("active" | "completed" | "failed", error)`: completed means the
  // state is loaded and the guest may run.
  using Notify = std::function<void(const std::string& status, const std::string& error)>;

  // `listener` listens already (bound at start, so a bad address fails the
  // start). The source's first connection is the one taken.
  Destination(Machine& machine, UniqueFd listener, Notify notify);
  ~Destination();

 private:
  void Run();
  void Receive();

  Machine& machine_;
  UniqueFd listener_;
  Notify notify_;
  std::unique_ptr<Channel> channel_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace virga::migration
