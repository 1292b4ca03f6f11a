// The VMM log (-D): timestamped lines to a file, to stderr (-D without a
// file), or nowhere. Writes are synchronous and unbuffered: lines are rare
// and must survive an exit right after them.
#pragma once

#include <optional>
#include <string>

namespace virga {

class VmmLog {
 public:
  // nullopt: no log; "": stderr; else the file, opened for appending.
  explicit VmmLog(const std::optional<std::string>& target);
  ~VmmLog();
  VmmLog(const VmmLog&) = delete;
  VmmLog& operator=(const VmmLog&) = delete;

  void Log(const std::string& line) const;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool owned_ = false;
};

}  // namespace virga
