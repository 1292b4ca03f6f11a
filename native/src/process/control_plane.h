// The VM's TypeScript control plane (QMP server, run state, events) as a
// companion process. The VM process boots the guest natively, so Node's
// start-up is never on the boot path, and starts the control plane when the
// first QMP client connects, with one end of a socketpair as its fd 3 and
// the QMP listening socket (process/qmp_listener.h) as its fd 4.
//
// Wire (one JSON object per line, both ways):
//   VMM → control plane: {"hello":{"config":<VmConfig>,"ptyPath":...,"status":...}}
//                        {"id":N,"result":<json>} | {"id":N,"error":"...","class":"..."}
//                        {"event":"shutdown","guest":bool,"reason":"..."}
//                        {"event":"error","message":"..."}
//                        {"event":"qmp","name":"BALLOON_CHANGED","data":{...}}
//   control plane → VMM: {"id":N,"op":"<op>","args":{...},"fds":k} requests
//                        (apps/host/src/vmm/vmm-channel.ts lists the ops),
//                        and the notices {"notice":"quit"} and
//                        {"notice":"fail","message":"..."} (no reply).
//   A request with "fds":k carries k descriptors (SCM_RIGHTS) on its bytes:
//   a tap handed to QMP getfd reaches the VMM this way.
#pragma once

#include <sys/types.h>

#include <deque>
#include <functional>
#include <string>

#include "common/fd.h"

namespace virga {

class ControlPlane {
 public:
  // Starts node on the control plane script: $VIRGA_CONTROL_PLANE, else the
  // bundle built next to this binary's repository; node from $VIRGA_NODE or PATH.
  static ControlPlane Spawn(const std::string& hello_json, int qmp_listener);

  ControlPlane() = default;
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int fd() const { return channel_.get(); }

  void Send(const std::string& line);
  // Reads what is available; calls on_line per complete line. False at EOF.
  // Descriptors that arrived meanwhile wait for TakeFd, in order.
  bool ReadLines(const std::function<void(const std::string&)>& on_line);
  // The oldest descriptor received and not yet taken (invalid if none).
  UniqueFd TakeFd();
  // After the control plane has been told to finish: waits up to timeout_ms
  // for it to exit, then kills it. Returns its wait status (or -1).
  int WaitForExit(int timeout_ms);
  // Reaps it if it has exited; returns true and the status then.
  bool Reap(int* status);

 private:
  pid_t pid_ = -1;
  UniqueFd channel_;
  std::string pending_;
  std::deque<UniqueFd> fds_;
};

}  // namespace virga
