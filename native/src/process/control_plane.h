// The VM's TypeScript control plane (QMP server, run state, events), outside
// the VM process. The VM process boots the guest natively, so Node's start-up
// is never on the boot path, and hands the control plane the VM when the
// first QMP client connects. The control plane runs in one of two places:
//   - a companion: a Node process of its own, started with one end of a
//     socketpair as its fd 3 and the QMP listening socket
//     (process/qmp_listener.h) as its fd 4;
//   - the control-plane host: one Node process serving the control planes of
//     many VMs (virgad runs one per run directory), reached on a unix socket;
//     the hello goes with the QMP listening socket attached (SCM_RIGHTS) and
//     that connection is the channel.
// The VM's state stays here either way; a control plane that goes is
// replaced (docs/architecture.md, "Processes").
//
// Wire (one JSON object per line, both ways):
//   VMM → control plane: {"hello":{"config":<VmConfig>,"ptyPath":...,"status":...,"pid":N}}
//                        {"id":N,"result":<json>} | {"id":N,"error":"...","class":"..."}
//                        {"event":"shutdown","guest":bool,"reason":"..."}
//                        {"event":"error","message":"..."}
//                        {"event":"qmp","name":"BALLOON_CHANGED","data":{...}}
//                        {"event":"detach"}  (stop serving, the VM goes on:
//                        it moves to the control-plane host)
//   control plane → VMM: {"id":N,"op":"<op>","args":{...},"fds":k} requests
//                        (apps/host/src/vmm/vmm-channel.ts lists the ops),
//                        and the notices {"notice":"quit"},
//                        {"notice":"fail","message":"..."} (the VM ends) and
//                        {"notice":"restart","message":"..."} (this VM's
//                        control plane failed in the host; counted like a
//                        companion that died) (no reply).
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
  // A connection to the control-plane host at socket_path. Never waits: a
  // host that is gone, or too busy to have room in its backlog, throws.
  static UniqueFd ConnectToHost(const std::string& socket_path);
  // Hands the VM to the host over `connection` (ConnectToHost). Throws if
  // the hello cannot be sent.
  static ControlPlane Hosted(UniqueFd connection, const std::string& hello_json, int qmp_listener);

  ControlPlane() = default;
  bool active() const { return channel_.valid(); }
  bool hosted() const { return hosted_; }
  pid_t pid() const { return pid_; }
  int fd() const { return channel_.get(); }

  void Send(const std::string& line);
  // Reads what is available; calls on_line per complete line. False at EOF.
  // Descriptors that arrived meanwhile wait for TakeFd, in order.
  bool ReadLines(const std::function<void(const std::string&)>& on_line);
  // The oldest descriptor received and not yet taken (invalid if none).
  UniqueFd TakeFd();
  // After the control plane has been told to finish (or has gone): waits up
  // to timeout_ms for it to let go of the VM, a companion to exit (then it
  // is killed), the host to close the channel, and drops the channel.
  // Returns a companion's wait status (-1 if unknown or hosted).
  int WaitForEnd(int timeout_ms);
  // Reaps a companion that has exited; returns true and the status then.
  bool Reap(int* status);

 private:
  pid_t pid_ = -1;
  bool hosted_ = false;
  UniqueFd channel_;
  std::string pending_;
  std::deque<UniqueFd> fds_;
};

}  // namespace virga
