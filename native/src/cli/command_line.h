// argv → VmmConfig: walks the flags (flags.h parses each), applies defaults
// and checks what involves several flags (slots, drive references,
// conflicting pairs). Every mistake is a UsageError naming one flag.
#pragma once

#include <string>
#include <vector>

#include "cli/vmm_config.h"

namespace virga::cli {

struct Invocation {
  enum class Action { kRun, kHelp, kVersion, kPrintConfig } action = Action::kRun;
  VmmConfig config;
};

// argv without the program name.
Invocation ParseCommandLine(const std::vector<std::string>& argv);
// Kernel, initrd and drive files must exist and be regular files or block devices.
void ValidateFiles(const VmmConfig& config);
std::string Usage();

}  // namespace virga::cli
