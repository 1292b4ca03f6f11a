// How a VM ends; devices report it, the VM object turns it into one event.
#pragma once

#include <functional>
#include <string>

namespace virga {

enum class ExitKind { kGuestShutdown, kGuestReset, kError };

struct ExitReason {
  ExitKind kind;
  // What happened: the error, or which device or event ended the guest.
  std::string message;
  // A guest ending that is a crash rather than a request (a triple fault):
  // said on stderr too, not only in the -D log.
  bool crash = false;
};

using ExitRequest = std::function<void(const ExitReason&)>;

}  // namespace virga
