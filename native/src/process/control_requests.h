// The control plane's requests to the VM (the ops of process/control_plane.h),
// carried out on the machine. Arguments were shaped by the control plane
// (apps/host/src/vmm/vmm-channel.ts); they are still checked here, since
// they cross a process boundary.
#pragma once

#include <string>
#include <vector>

#include "common/fd.h"
#include "common/json.h"
#include "vm/machine.h"

namespace virga {

struct ControlContext {
  uint64_t process_start_ns;
  std::string vmm_version;
};

// Runs one request; returns its result. Throws VmmError (or QmpError, whose
// class goes back to QMP) with a message that names the bad field.
Json RunControlRequest(Machine& machine, const std::string& op, const Json& args, std::vector<UniqueFd> fds,
                       const ControlContext& context);

// One -D log line per vCPU as the VM ends: where its time went.
std::string RunStatsLogLine(const VcpuSummary& v, uint64_t process_start_ns);

}  // namespace virga
