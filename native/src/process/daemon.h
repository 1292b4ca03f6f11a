// -daemonize: fork before any thread exists; the parent waits on a pipe until
// the child reports the VM up (QMP listening, pidfile written) or why it
// failed, then exits 0 or 1. The child runs in its own session with stdin on
// /dev/null and stdout/stderr on the -D log file or /dev/null.
#pragma once

#include <optional>
#include <string>

namespace virga {

class DaemonReport {
 public:
  DaemonReport() = default;
  explicit DaemonReport(int fd) : fd_(fd) {}
  bool active() const { return fd_ >= 0; }
  // Both report once; later calls do nothing.
  void Ready(const std::string& pty_path);
  void Fail(const std::string& message);

 private:
  void Send(const std::string& line);
  int fd_ = -1;
};

// Returns in the child only (the parent exits with the child's verdict).
DaemonReport Daemonize(const std::optional<std::string>& log_file);

}  // namespace virga
