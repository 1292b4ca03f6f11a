#include "process/pidfile.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/error.h"

namespace virga {

void WritePidfile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw ErrnoError("-pidfile: cannot write " + path);
  std::string text = std::to_string(::getpid()) + "\n";
  ssize_t written = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(text.size())) throw VmmError("-pidfile: short write to " + path);
}

void RemovePidfile(const std::string& path) {
  std::ifstream in(path);
  std::string pid;
  if (in >> pid && pid == std::to_string(::getpid())) ::unlink(path.c_str());
}

}  // namespace virga
