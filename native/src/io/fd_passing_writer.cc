#include "io/fd_passing_writer.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace virga {

void SendWithFds(int socket, const std::string& data, const std::vector<int>& fds, int timeout_ms) {
  size_t off = 0;
  bool fds_sent = fds.empty();
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (fds.empty() ? 1 : fds.size())));
  while (off < data.size() || !fds_sent) {
    iovec iov{const_cast<char*>(data.data() + off), data.size() - off};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds_sent) {
      msg.msg_control = control.data();
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{socket, POLLOUT, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) throw VmmError("sending on the control channel timed out");
      continue;
    }
    if (n < 0) throw ErrnoError("sending on the control channel");
    // Descriptors travel with the first byte that went out.
    fds_sent = true;
    off += static_cast<size_t>(n);
  }
}

}  // namespace virga
