// A network backend: a Linux tap device carrying virtio-net headers
// (IFF_VNET_HDR), so checksum and segmentation offloads pass between the
// guest and the host kernel instead of being done in software here.
#pragma once

#include <memory>
#include <string>

#include "common/fd.h"

namespace virga {

// Linux's rule for interface names: 1-15 bytes, not "." or "..", no '/',
// ':' or whitespace.
bool IsInterfaceName(const std::string& name);

class Tap {
 public:
  // Attaches to the existing tap `ifname` (IFF_TAP | IFF_NO_PI |
  // IFF_VNET_HDR). Throws VmmError saying whether it is missing, not a tap,
  // or busy (attached to another process).
  static std::unique_ptr<Tap> Open(const std::string& ifname);
  // Takes a tap fd someone else opened (-netdev fd=, QMP getfd). It must be
  // a tap opened with IFF_VNET_HDR; `label` names it in errors.
  static std::unique_ptr<Tap> Adopt(UniqueFd fd, const std::string& label);

  // A stand-in for a tap in unit tests and the fuzzer: a non-blocking
  // SOCK_SEQPACKET socket carries one frame per message, virtio-net header
  // first, as a tap with IFF_VNET_HDR does. The tap ioctls are skipped.
  static std::unique_ptr<Tap> FrameSocket(UniqueFd fd, const std::string& label);

  int fd() const { return fd_.get(); }
  const std::string& ifname() const { return ifname_; }
  // The virtio-net header the guest uses (12 bytes with VIRTIO_F_VERSION_1).
  void SetHeaderSize(int bytes);
  // Which offloads the host may hand us (TUN_F_* bits): only those the
  // guest's driver accepted, or it would receive frames it cannot parse.
  void SetOffloads(unsigned flags);

 private:
  Tap(UniqueFd fd, std::string ifname, bool is_tap = true)
      : fd_(std::move(fd)), ifname_(std::move(ifname)), is_tap_(is_tap) {}

  UniqueFd fd_;
  std::string ifname_;
  bool is_tap_;
};

}  // namespace virga
