// VmmConfig as JSON in the shape of the TypeScript VmConfig
// (apps/host/src/config/vm-config.ts): what the control plane receives and
// what `virga-vmm -print-config` prints.
#pragma once

#include <string>

#include "cli/vmm_config.h"

namespace virga::cli {

std::string ToJson(const VmmConfig& config);

}  // namespace virga::cli
