// Writes bytes with file descriptors attached (SCM_RIGHTS) on a unix stream
// socket, whole: Node's net module cannot send descriptors, and the control
// plane must pass a tap from QMP getfd on to the VM process.
#pragma once

#include <string>
#include <vector>

namespace virga {

// Sends all of `data`, the fds with its first byte. The socket may be
// non-blocking: a full buffer is waited out (up to `timeout_ms`). Throws
// VmmError on failure.
void SendWithFds(int socket, const std::string& data, const std::vector<int>& fds, int timeout_ms = 5000);

}  // namespace virga
