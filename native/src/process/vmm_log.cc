#include "process/vmm_log.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <ctime>

#include "common/error.h"

namespace virga {

VmmLog::VmmLog(const std::optional<std::string>& target) {
  if (!target) return;
  if (target->empty()) {
    fd_ = STDERR_FILENO;
    return;
  }
  fd_ = ::open(target->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) throw ErrnoError("-D: cannot open log file " + *target);
  owned_ = true;
}

VmmLog::~VmmLog() {
  if (owned_) ::close(fd_);
}

void VmmLog::Log(const std::string& line) const {
  if (fd_ < 0) return;
  timeval now{};
  ::gettimeofday(&now, nullptr);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  char stamp[40];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  char millis[24];
  std::snprintf(millis, sizeof(millis), ".%03ldZ", static_cast<long>(now.tv_usec / 1000));
  std::string text = std::string(stamp) + millis + " virga-vmm[" + std::to_string(::getpid()) + "]: " + line + "\n";
  // A full disk or a closed stderr must not take the VM down.
  ssize_t ignored = ::write(fd_, text.data(), text.size());
  (void)ignored;
}

}  // namespace virga
