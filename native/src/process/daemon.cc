#include "process/daemon.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace virga {

void DaemonReport::Ready(const std::string& pty_path) { Send("ready " + pty_path + "\n"); }

void DaemonReport::Fail(const std::string& message) { Send("fail " + message + "\n"); }

void DaemonReport::Send(const std::string& line) {
  if (fd_ < 0) return;
  ssize_t ignored = ::write(fd_, line.data(), line.size());  // the parent may be gone
  (void)ignored;
  ::close(fd_);
  fd_ = -1;
  // Only now leave the terminal's stdio: errors before this went to the caller.
  int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::close(null);
  }
}

DaemonReport Daemonize(const std::optional<std::string>& log_file) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw ErrnoError("-daemonize: pipe");
  pid_t pid = ::fork();
  if (pid < 0) throw ErrnoError("-daemonize: fork");
  if (pid > 0) {
    ::close(pipe_fds[1]);
    std::string text;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (text.rfind("ready", 0) == 0) {
      std::string pty = text.size() > 6 ? text.substr(6) : "";
      if (!pty.empty()) std::fprintf(stderr, "char device redirected to %s (label serial0)\n", pty.c_str());
      std::_Exit(0);
    }
    std::string reason = text.rfind("fail ", 0) == 0 ? text.substr(5) : "the VM process exited before it was ready";
    std::fprintf(stderr, "virga-vmm: error: %s\n", reason.c_str());
    std::_Exit(1);
  }
  ::close(pipe_fds[0]);
  ::setsid();
  // Output goes to the log from the start; stdin stays until the report so a
  // failure before it is still the caller's to see (its stderr is ours too).
  int out = log_file && !log_file->empty() ? ::open(log_file->c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640)
                                           : ::open("/dev/null", O_WRONLY);
  if (out >= 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::close(out);
  }
  return DaemonReport(pipe_fds[1]);
}

}  // namespace virga
