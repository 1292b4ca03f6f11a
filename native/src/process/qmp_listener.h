// The QMP listening socket, made by the VM process before the guest runs so
// a client can connect at once (as with QEMU); the control plane inherits it
// and accepts once it is up. unix: mode 0600 from the start, a stale socket
// file replaced, a live one or a non-socket refused; tcp: host and port.
#pragma once

#include <string>

#include "cli/vmm_config.h"
#include "common/fd.h"

namespace virga {

UniqueFd ListenForQmp(const cli::Qmp& qmp);

}  // namespace virga
