#include "virtio/mac_translation.h"

#include <algorithm>
#include <cstring>

namespace virga::virtio {

namespace {

using Mac = std::array<uint8_t, 6>;

constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88a8;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint16_t kDhcpServerPort = 67;
constexpr uint16_t kDhcpClientPort = 68;
constexpr uint8_t kDhcpRequest = 1;  // BOOTREQUEST, client → server
constexpr uint8_t kDhcpReply = 2;    // BOOTREPLY, server → client
constexpr size_t kDhcpChaddr = 28;
constexpr size_t kDhcpOptions = 240;  // after the magic cookie
constexpr uint8_t kDhcpClientIdentifier = 61;
constexpr uint8_t kNdpSourceLinkAddress = 1;
constexpr uint8_t kNdpTargetLinkAddress = 2;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// A one's complement sum of `bytes` as they fall into the 16-bit words of
// a checksummed region, `offset` being where they start in it: a byte at
// an even offset is a word's high byte.
uint32_t PlacedSum(const uint8_t* bytes, size_t n, size_t offset) {
  uint32_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += (offset + i) % 2 == 0 ? uint32_t{bytes[i]} << 8 : bytes[i];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

// Puts `to` where `from` is at `at`, `offset` bytes into the region the
// checksum at `checksum` covers, and updates that checksum incrementally
// (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')). `checksum` null: none.
void Replace(uint8_t* at, const Mac& to, uint8_t* checksum, size_t offset) {
  if (checksum != nullptr) {
    uint32_t sum = uint32_t{0xffff} - Be16(checksum);
    sum += uint32_t{0xffff} - PlacedSum(at, to.size(), offset);
    sum += PlacedSum(to.data(), to.size(), offset);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t updated = static_cast<uint16_t>(~sum);
    checksum[0] = static_cast<uint8_t>(updated >> 8);
    checksum[1] = static_cast<uint8_t>(updated & 0xff);
  }
  std::memcpy(at, to.data(), to.size());
}

bool Names(const uint8_t* at, const Mac& mac) { return std::memcmp(at, mac.data(), mac.size()) == 0; }

struct Rewrite {
  uint8_t* frame;
  size_t len;
  const Mac& from;
  const Mac& to;
  bool checksum_partial;
  bool outgoing;

  void ReplaceIfNamed(size_t at, uint8_t* checksum = nullptr, size_t region = 0) const {
    if (at + 6 <= len && Names(frame + at, from)) Replace(frame + at, to, checksum, at - region);
  }

  void Run() const {
    if (len < 14) return;
    // Only the guest's own address: frames for other hosts, broadcast and
    // multicast keep theirs.
    ReplaceIfNamed(outgoing ? 6 : 0);
    size_t l3 = 14;
    uint16_t type = Be16(frame + 12);
    if ((type == kEtherVlan || type == kEtherQinQ) && len >= 18) {
      type = Be16(frame + 16);
      l3 = 18;
    }
    if (type == kEtherArp) Arp(l3);
    if (type == kEtherIpv4) Ipv4(l3);
    if (type == kEtherIpv6) Ipv6(l3);
  }

  void Arp(size_t at) const {
    // Ethernet/IPv4 ARP: the sender's and target's hardware addresses.
    if (at + 28 > len) return;
    const uint8_t* arp = frame + at;
    if (Be16(arp) != 1 || Be16(arp + 2) != kEtherIpv4 || arp[4] != 6 || arp[5] != 4) return;
    ReplaceIfNamed(at + 8);
    ReplaceIfNamed(at + 18);
  }

  void Ipv4(size_t at) const {
    if (at + 20 > len) return;
    const uint8_t* ip = frame + at;
    size_t header = size_t{ip[0] & 0x0fu} * 4;
    // A later fragment carries no UDP header.
    if (ip[0] >> 4 != 4 || header < 20 || ip[9] != kProtoUdp || (Be16(ip + 6) & 0x1fff) != 0) return;
    size_t udp = at + header;
    if (udp + 8 > len) return;
    uint16_t source = Be16(frame + udp), destination = Be16(frame + udp + 2);
    bool to_server = source == kDhcpClientPort && destination == kDhcpServerPort;
    bool to_client = source == kDhcpServerPort && destination == kDhcpClientPort;
    if (outgoing ? !to_server : !to_client) return;
    Dhcp(udp);
  }

  void Dhcp(size_t udp) const {
    size_t dhcp = udp + 8;
    if (dhcp + kDhcpChaddr + 6 > len) return;
    const uint8_t* d = frame + dhcp;
    if (d[0] != (outgoing ? kDhcpRequest : kDhcpReply) || d[1] != 1 || d[2] != 6) return;
    // A UDP checksum of 0 means none was computed.
    uint8_t* checksum = checksum_partial || Be16(frame + udp + 6) == 0 ? nullptr : frame + udp + 6;
    ReplaceIfNamed(dhcp + kDhcpChaddr, checksum, udp);
    // The client identifier option, when it is the hardware type and MAC
    // (what dhclient sends): servers key leases by it.
    size_t end = std::min(len, udp + Be16(frame + udp + 4));
    for (size_t option = dhcp + kDhcpOptions; option + 2 <= end;) {
      uint8_t code = frame[option];
      if (code == 0) {
        ++option;
        continue;
      }
      if (code == 255) break;
      uint8_t size = frame[option + 1];
      if (code == kDhcpClientIdentifier && size == 7 && option + 9 <= end && frame[option + 2] == 1) {
        ReplaceIfNamed(option + 3, checksum, udp);
      }
      option += 2 + size;
    }
    if (checksum != nullptr && Be16(checksum) == 0) checksum[0] = checksum[1] = 0xff;  // 0 would mean "none"
  }

  void Ipv6(size_t at) const {
    if (at + 40 > len || frame[at] >> 4 != 6 || frame[at + 6] != kProtoIcmpv6) return;
    size_t icmp = at + 40;
    size_t end = std::min(len, icmp + Be16(frame + at + 4));
    if (icmp + 4 > end) return;
    size_t options;
    switch (frame[icmp]) {
      case 133: options = 8; break;   // router solicitation
      case 134: options = 16; break;  // router advertisement
      case 135:                       // neighbour solicitation
      case 136: options = 24; break;  // neighbour advertisement
      case 137: options = 40; break;  // redirect
      default: return;
    }
    uint8_t* checksum = checksum_partial ? nullptr : frame + icmp + 2;
    for (size_t option = icmp + options; option + 8 <= end;) {
      size_t size = size_t{frame[option + 1]} * 8;
      if (size == 0) return;  // malformed: the guest's stack drops it anyway
      uint8_t type = frame[option];
      if ((type == kNdpSourceLinkAddress || type == kNdpTargetLinkAddress) && size == 8) {
        ReplaceIfNamed(option + 2, checksum, icmp);
      }
      option += size;
    }
  }
};

}  // namespace

void RewriteOutgoing(uint8_t* frame, size_t len, const MacPair& macs, bool checksum_partial) {
  Rewrite{frame, len, macs.guest, macs.wire, checksum_partial, true}.Run();
}

void RewriteIncoming(uint8_t* frame, size_t len, const MacPair& macs, bool checksum_partial) {
  Rewrite{frame, len, macs.wire, macs.guest, checksum_partial, false}.Run();
}

}  // namespace virga::virtio
