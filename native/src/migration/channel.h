// The migration stream between two virga-vmm processes (docs/migration.md):
// typed, length-prefixed messages on a connected tcp or unix socket. Every
// read and write can be interrupted (Abort) so a cancel never waits on a
// peer that stopped answering.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/fd.h"
#include "vm/machine_layout.h"

namespace virga::migration {

enum class MessageType : uint32_t {
  kHello = 1,   // source → destination: protocol version, VMM version, machine layout
  kReady = 2,   // destination → source: the machine matches
  kRefuse = 3,  // destination → source: why not (a string)
  kPages = 4,   // source → destination: a batch of pages
  kState = 5,   // source → destination: the state file, after the last pages
  kDone = 6,    // destination → source: state loaded, the guest runs there
  kError = 7,   // destination → source: a failure after Ready (a string)
  kCancel = 8,  // source → destination: the source gave up (a string)
};

constexpr char kMagic[8] = {'V', 'I', 'R', 'G', 'A', 'M', 'I', 'G'};
// Bumped whenever a message's layout changes; peers of another version refuse.
constexpr uint32_t kProtocolVersion = 2;

// The source's first message: the magic, kProtocolVersion, its version and its machine.
std::vector<uint8_t> EncodeHello(const std::string& vmm_version, const MachineLayout& layout);

struct Message {
  MessageType type;
  std::vector<uint8_t> payload;
};

// "tcp:<host>:<port>" or "unix:<path>" → a connected socket. Throws VmmError
// naming the address and the reason.
UniqueFd Connect(const std::string& uri, int timeout_ms);
// A listening socket for -incoming; Accept waits for the one source.
UniqueFd Listen(const std::string& uri);
UniqueFd Accept(int listener);

class Channel {
 public:
  explicit Channel(UniqueFd fd) : fd_(std::move(fd)) {}

  void Send(MessageType type, const void* payload, size_t len);
  void Send(MessageType type, const std::vector<uint8_t>& payload) { Send(type, payload.data(), payload.size()); }
  // Waits up to timeout_ms (-1: forever). Throws on EOF, timeout, abort,
  // or a message larger than max_bytes.
  Message Receive(int timeout_ms, size_t max_bytes = 256u << 20);
  // From another thread: every blocked or later call fails at once.
  void Abort();
  uint64_t bytes_sent() const { return sent_.load(); }

 private:
  void WriteAll(const void* data, size_t len);
  void ReadAll(void* data, size_t len, int timeout_ms);

  UniqueFd fd_;
  std::atomic<bool> aborted_{false};
  std::atomic<uint64_t> sent_{0};
};

}  // namespace virga::migration
