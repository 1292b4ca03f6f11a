// A command-line mistake: exit code 2 and one stderr line naming the flag and
// the form it expects: "-smp: expected [cpus=]n[,maxcpus=n]..., got 'x'".
#pragma once

#include <stdexcept>
#include <string>

namespace virga::cli {

class UsageError : public std::runtime_error {
 public:
  UsageError(const std::string& flag, const std::string& message) : std::runtime_error(flag + ": " + message) {}

  // The usual shape: what was wrong (may be empty), the expected form, what was given.
  static UsageError Expected(const std::string& flag, const std::string& syntax, const std::string& got,
                             const std::string& problem = "") {
    return UsageError(flag, (problem.empty() ? "" : problem + "; ") + "expected " + syntax + ", got '" + got + "'");
  }
};

}  // namespace virga::cli
