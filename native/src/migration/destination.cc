#include "migration/destination.h"

#include <poll.h>
#include <sys/socket.h>

#include "migration/incoming.h"

namespace virga::migration {

namespace {

// The running Machine as the stream's target.
class MachineTarget : public IncomingMachine {
 public:
  explicit MachineTarget(Machine& machine) : machine_(machine) {}
  std::vector<std::string> AcceptLayout(const MachineLayout& source) override {
    return machine_.AcceptIncomingLayout(source);
  }
  const GuestMemory& memory() const override { return machine_.memory(); }
  void LoadState(const state::StateFile& file) override { machine_.LoadIncomingState(file); }

 private:
  Machine& machine_;
};

}  // namespace

Destination::Destination(Machine& machine, UniqueFd listener, Notify notify)
    : machine_(machine), listener_(std::move(listener)), notify_(std::move(notify)) {
  thread_ = std::thread([this] { Run(); });
}

Destination::~Destination() {
  stopping_.store(true);
  if (listener_.valid()) ::shutdown(listener_.get(), SHUT_RDWR);
  if (channel_) channel_->Abort();
  if (thread_.joinable()) thread_.join();
}

void Destination::Run() {
  try {
    Receive();
  } catch (const std::exception& e) {
    if (!stopping_.load()) notify_("failed", e.what());
  }
}

void Destination::Receive() {
  // Waits for the source, in steps so a teardown can stop the wait.
  for (;;) {
    pollfd p{listener_.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, 200);
    if (stopping_.load()) return;
    if (ready > 0) break;
  }
  channel_ = std::make_unique<Channel>(Accept(listener_.get()));
  listener_.Reset();
  MachineTarget target(machine_);
  ReceiveMigration(*channel_, target, 30000, [this] { notify_("active", ""); });
  notify_("completed", "");
}

}  // namespace virga::migration
