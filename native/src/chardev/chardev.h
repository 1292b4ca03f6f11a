// Where a serial port's bytes go: stdio, a pty, a file, or a unix socket
// server. Output is written from the vCPU thread straight to the backend;
// input is read on the I/O thread and handed to the device only as fast as
// the device has room, so a flood never grows a buffer without bound.
// A socket client that reads slowly pushes back instead of losing bytes:
// Write takes what the socket accepts and the device holds the rest (its
// transmitter stays busy) until the backend reports it writable again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/fd.h"
#include "io/event_loop.h"

namespace virga {

struct ChardevConfig {
  enum class Kind { kStdio, kPty, kFile, kSocket, kNone } kind = Kind::kNone;
  std::string path;
};

class Chardev {
 public:
  // Accepts up to `len` bytes, returns how many it took.
  using InputSink = std::function<size_t(const uint8_t* data, size_t len)>;

  explicit Chardev(const ChardevConfig& config);
  ~Chardev();

  using WritableHandler = std::function<void()>;

  // Returns how many bytes were taken (consumed or, with nobody to read
  // them, discarded). Less than len only for a socket client that is not
  // keeping up; call RequestWritable and retry when told.
  size_t Write(const uint8_t* data, size_t len);
  // Calls the writable handler (on the I/O thread) once output can go on.
  void RequestWritable();
  void SetWritableHandler(WritableHandler handler);
  // Registers input sources with the loop; `sink` receives guest input.
  void Attach(EventLoop* loop, InputSink sink);
  // Called by the device when it has room again after refusing input.
  void ResumeInput();
  void Detach();
  const std::string& pty_path() const { return pty_path_; }

 private:
  void OnInputReadable(uint32_t events);
  void OnClientEvents(uint32_t events);
  void UpdateClientInterest();
  void OnAccept();
  // DropClient closes the client's fd: only on the I/O thread (or with no
  // loop). Other threads abandon it; the I/O thread drops it after.
  void DropClient();
  void AbandonClient();
  int LiveClientFd() const;
  void WaitWritable(int fd);

  ChardevConfig::Kind kind_;
  std::string socket_path_;
  std::string pty_path_;
  UniqueFd owned_out_;   // file or pty master
  UniqueFd pty_slave_;
  UniqueFd listener_;    // socket backend
  UniqueFd client_;      // socket backend's connected client
  bool client_abandoned_ = false;  // shut down by a failed write; the I/O thread closes it
  int in_fd_ = -1;
  int out_fd_ = -1;
  bool nonblocking_drop_ = false;  // pty/socket: drop output nobody reads rather than stall the guest
  // Socket backend: the newest output written while no client is connected
  // (at most kHeldBytes), sent to the next client first, so a console that
  // reconnects (virgad restarting, a VM moving to a new process) misses
  // nothing of a short gap. Older bytes are dropped, never the guest stalled.
  static constexpr size_t kHeldBytes = 64 * 1024;
  std::vector<uint8_t> held_;
  size_t held_start_ = 0;
  size_t held_size_ = 0;
  void HoldLocked(const uint8_t* data, size_t len);
  void SendHeldLocked(int fd);

  std::mutex lock_;
  EventLoop* loop_ = nullptr;
  InputSink sink_;
  bool input_paused_ = false;
  bool resume_requested_ = false;
  bool want_writable_ = false;
  WritableHandler on_writable_;
};

}  // namespace virga
