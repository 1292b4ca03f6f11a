#include "backends/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cctype>
#include <climits>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace virga {

bool IsInterfaceName(const std::string& name) {
  // Linux's dev_valid_name.
  if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (c == '/' || c == ':' || std::isspace(c)) return false;
  }
  return true;
}

namespace {
// A tap's send buffer starts at net.core.wmem_default (about 208 KiB): a
// few 64 KiB TSO frames the host has not consumed yet fill it, and writes
// fail with EAGAIN. Unlimited, as QEMU sets it, the guest's TCP is paced
// by the host's stack instead.
void SetUnlimitedSendBuffer(int fd, const std::string& quoted) {
  int unlimited = INT_MAX;
  if (::ioctl(fd, TUNSETSNDBUF, &unlimited) != 0) throw ErrnoError("TUNSETSNDBUF on " + quoted);
}
}  // namespace

std::unique_ptr<Tap> Tap::Open(const std::string& ifname) {
  const std::string quoted = "tap '" + ifname + "'";
  if (!IsInterfaceName(ifname)) {
    throw VmmError("'" + ifname + "' is not an interface name (1-15 bytes, not '.' or '..', no '/', ':' or whitespace)");
  }
  // TUNSETIFF would create a missing tap (we run as root): a typo would
  // then give the guest a NIC wired to nothing. Only existing taps are used.
  struct stat st {};
  if (::stat(("/sys/class/net/" + ifname).c_str(), &st) != 0) {
    throw VmmError(quoted + " does not exist (create it with: ip tuntap add " + ifname + " mode tap)");
  }
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) throw ErrnoError("could not open /dev/net/tun for " + quoted);
  ifreq request{};
  std::strncpy(request.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &request) != 0) {
    int err = errno;
    if (err == EBUSY) throw VmmError(quoted + " is busy (attached to another process)");
    if (err == EINVAL) throw VmmError("'" + ifname + "' is not a tap device (or is a multi-queue tap)");
    if (err == EPERM) throw VmmError("not allowed to attach to " + quoted + " (owned by another user)");
    throw ErrnoError("could not attach to " + quoted, err);
  }
  SetUnlimitedSendBuffer(fd.get(), quoted);
  return std::unique_ptr<Tap>(new Tap(std::move(fd), ifname));
}

std::unique_ptr<Tap> Tap::Adopt(UniqueFd fd, const std::string& label) {
  ifreq request{};
  if (::ioctl(fd.get(), TUNGETIFF, &request) != 0) {
    throw VmmError("'" + label + "' is not a tap file descriptor");
  }
  if (!(request.ifr_flags & IFF_TAP)) throw VmmError("'" + label + "' is a tun, not a tap");
  if (!(request.ifr_flags & IFF_VNET_HDR)) {
    throw VmmError("tap '" + label + "' was opened without IFF_VNET_HDR");
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    throw ErrnoError("could not make tap '" + label + "' non-blocking");
  }
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  SetUnlimitedSendBuffer(fd.get(), "tap '" + label + "'");
  return std::unique_ptr<Tap>(new Tap(std::move(fd), request.ifr_name));
}

std::unique_ptr<Tap> Tap::FrameSocket(UniqueFd fd, const std::string& label) {
  return std::unique_ptr<Tap>(new Tap(std::move(fd), label, false));
}

void Tap::SetHeaderSize(int bytes) {
  if (!is_tap_) return;
  if (::ioctl(fd_.get(), TUNSETVNETHDRSZ, &bytes) != 0) throw ErrnoError("TUNSETVNETHDRSZ on tap " + ifname_);
}

void Tap::SetOffloads(unsigned flags) {
  if (!is_tap_) return;
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(flags)) != 0) {
    throw ErrnoError("TUNSETOFFLOAD on tap " + ifname_);
  }
}

}  // namespace virga
