// Typed errors that wrap as they rise: each layer adds what it was doing, so
// the message that reaches QMP or stderr reads as a whole chain
// ("failed to load kernel: failed to open /x: No such file or directory").
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace virga {

class VmmError : public std::runtime_error {
 public:
  explicit VmmError(const std::string& message) : std::runtime_error(message) {}
  VmmError(const std::string& context, const std::exception& cause)
      : std::runtime_error(context + ": " + cause.what()) {}
};

// An error a QMP command reports with a class other than GenericError
// (QMP.md: DeviceNotFound, DeviceNotActive); the message names the field.
class QmpError : public VmmError {
 public:
  QmpError(std::string qmp_class, const std::string& message) : VmmError(message), qmp_class_(std::move(qmp_class)) {}
  const std::string& qmp_class() const { return qmp_class_; }

 private:
  std::string qmp_class_;
};

// Builds an error from the current errno; call right after the failing syscall.
inline VmmError ErrnoError(const std::string& what) {
  return VmmError(what + ": " + std::strerror(errno));
}

inline VmmError ErrnoError(const std::string& what, int err) {
  return VmmError(what + ": " + std::strerror(err));
}

}  // namespace virga
