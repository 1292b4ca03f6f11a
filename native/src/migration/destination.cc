#include "migration/destination.h"

#include <poll.h>
#include <sys/socket.h>

#include <cstring>

#include "common/error.h"
#include "migration/pages.h"
#include "state/byte_stream.h"
#include "state/state_file.h"

namespace virga::migration {

namespace {
std::string Text(const std::vector<uint8_t>& payload) { return std::string(payload.begin(), payload.end()); }
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
  Channel& channel = *channel_;

  Message hello = channel.Receive(30000, 1 << 20);
  if (hello.type != MessageType::kHello) throw VmmError("the source did not start with a hello");
  state::ByteReader in(hello.payload.data(), hello.payload.size(), "the source's hello");
  char magic[sizeof(kMagic)];
  in.Bytes(magic, sizeof(magic));
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    throw VmmError("the peer is not a virga-vmm migration source");
  }
  uint32_t version = in.U32();
  std::string vmm_version = in.String();
  if (version != kProtocolVersion) {
    std::string why = "the source speaks migration protocol " + std::to_string(version) + " (virga-vmm " + vmm_version +
                      "), this destination " + std::to_string(kProtocolVersion);
    channel.Send(MessageType::kRefuse, why.data(), why.size());
    throw VmmError(why);
  }
  MachineLayout source = MachineLayout::Decode(in);
  std::vector<std::string> differences = machine_.AcceptIncomingLayout(source);
  if (!differences.empty()) {
    std::string why = "the destination's command line does not describe the source's machine: ";
    for (size_t i = 0; i < differences.size(); ++i) why += (i ? "; " : "") + differences[i];
    channel.Send(MessageType::kRefuse, why.data(), why.size());
    throw VmmError(why);
  }
  channel.Send(MessageType::kReady, nullptr, 0);
  notify_("active", "");

  for (;;) {
    Message m = channel.Receive(-1);
    switch (m.type) {
      case MessageType::kPages:
        ReceivePages(m.payload, machine_.memory(), &written_);
        break;
      case MessageType::kState: {
        try {
          machine_.LoadIncomingState(state::StateFile::Parse(std::move(m.payload), "the source's state"));
        } catch (const std::exception& e) {
          std::string why = e.what();
          channel.Send(MessageType::kError, why.data(), why.size());
          throw;
        }
        channel.Send(MessageType::kDone, nullptr, 0);
        notify_("completed", "");
        return;
      }
      case MessageType::kCancel:
        throw VmmError(m.payload.empty() ? "the source cancelled the migration"
                                         : "the source gave up: " + Text(m.payload));
      default:
        throw VmmError("the source sent an unexpected message");
    }
  }
}

}  // namespace virga::migration
