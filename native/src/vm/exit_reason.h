// How a VM ends; devices report it, the VM object turns it into one event.
#pragma once

#include <functional>
#include <string>

namespace virga {

enum class ExitKind { kGuestShutdown, kGuestReset, kError };

struct ExitReason {
  ExitKind kind;
  std::string message;  // for kError
};

using ExitRequest = std::function<void(const ExitReason&)>;

}  // namespace virga
