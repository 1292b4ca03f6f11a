#include "virtio/mac_translation.h"

#include <vector>

#include "unit_test.h"

namespace virga::virtio {
namespace {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

const Mac kGuest{0x52, 0x56, 0xaa, 0xbb, 0xcc, 0x00};
const Mac kWire{0x52, 0x56, 0x11, 0x22, 0x33, 0x00};
const Mac kPeer{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
const Mac kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
const MacPair kPair{kGuest, kWire};

void Put(Bytes& b, std::initializer_list<uint8_t> bytes) { b.insert(b.end(), bytes); }
void Put(Bytes& b, const Mac& mac) { b.insert(b.end(), mac.begin(), mac.end()); }
void Put16(Bytes& b, uint16_t v) { Put(b, {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v & 0xff)}); }
void Zeros(Bytes& b, size_t n) { b.insert(b.end(), n, 0); }
uint16_t Get16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }
Mac MacAt(const Bytes& b, size_t at) {
  Mac m{};
  for (size_t i = 0; i < 6; ++i) m[i] = b[at + i];
  return m;
}

Bytes Ethernet(const Mac& destination, const Mac& source, uint16_t type) {
  Bytes b;
  Put(b, destination);
  Put(b, source);
  Put16(b, type);
  return b;
}

// The Internet checksum from scratch over `data`, plus `seed` (a
// pseudo-header's sum): 0 when the stored checksum is right.
uint16_t Verify(const uint8_t* data, size_t n, uint32_t seed) {
  uint64_t sum = seed;
  for (size_t i = 0; i < n; ++i) sum += i % 2 == 0 ? uint32_t{data[i]} << 8 : data[i];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}
// Fills in the checksum at `field` the way a sender would.
void Seal(Bytes& b, size_t start, size_t field, uint32_t seed) {
  b[field] = b[field + 1] = 0;
  uint16_t sum = Verify(b.data() + start, b.size() - start, seed);
  b[field] = static_cast<uint8_t>(sum >> 8);
  b[field + 1] = static_cast<uint8_t>(sum & 0xff);
}

uint32_t AddressSum(const Bytes& b, size_t at, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i < n; i += 2) sum += Get16(b, at + i);
  return sum;
}

// IPv6 + ICMPv6 neighbour discovery of `type`, its fixed part `body`
// bytes long, then one link-layer address option.
constexpr size_t kIcmp = 14 + 40;
Bytes Ndp(const Mac& destination, const Mac& source, uint8_t type, size_t body, uint8_t option, const Mac& address) {
  Bytes b = Ethernet(destination, source, 0x86dd);
  Put(b, {0x60, 0, 0, 0});
  Put16(b, static_cast<uint16_t>(body + 8));
  Put(b, {58, 255});
  Put(b, {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x56, 0xaa, 0xff, 0xfe, 0xbb, 0xcc, 0x01});
  Put(b, {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xbb, 0xcc, 0x02});
  Put(b, {type, 0, 0, 0});
  for (size_t i = 4; i < body; ++i) b.push_back(static_cast<uint8_t>(i * 7));
  Put(b, {option, 1});
  Put(b, address);
  Seal(b, kIcmp, kIcmp + 2, AddressSum(b, 14 + 8, 32) + (body + 8) + 58);
  return b;
}
uint16_t VerifyNdp(const Bytes& b) {
  return Verify(b.data() + kIcmp, b.size() - kIcmp, AddressSum(b, 14 + 8, 32) + (b.size() - kIcmp) + 58);
}

// IPv4 + UDP + a DHCP message (`op`) with chaddr and a client identifier
// option naming `client`.
constexpr size_t kUdp = 14 + 20;
constexpr size_t kDhcp = kUdp + 8;
Bytes Dhcp(const Mac& destination, const Mac& source, uint8_t op, const Mac& client, bool checksum) {
  Bytes b = Ethernet(destination, source, 0x0800);
  Bytes dhcp;
  Put(dhcp, {op, 1, 6, 0, 0x12, 0x34, 0x56, 0x78});
  Zeros(dhcp, 20);
  Put(dhcp, client);
  Zeros(dhcp, 10 + 192);
  Put(dhcp, {0x63, 0x82, 0x53, 0x63, 53, 1, static_cast<uint8_t>(op == 1 ? 1 : 2), 0, 61, 7, 1});
  Put(dhcp, client);
  Put(dhcp, {255});
  uint16_t udp_len = static_cast<uint16_t>(8 + dhcp.size());
  Put(b, {0x45, 0});
  Put16(b, static_cast<uint16_t>(20 + udp_len));
  Put(b, {0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255});
  Put16(b, op == 1 ? 68 : 67);
  Put16(b, op == 1 ? 67 : 68);
  Put16(b, udp_len);
  Put16(b, 0);
  b.insert(b.end(), dhcp.begin(), dhcp.end());
  if (checksum) Seal(b, kUdp, kUdp + 6, AddressSum(b, 14 + 12, 8) + 17 + udp_len);
  return b;
}
uint16_t VerifyUdp(const Bytes& b) {
  return Verify(b.data() + kUdp, b.size() - kUdp, AddressSum(b, 14 + 12, 8) + 17 + (b.size() - kUdp));
}
constexpr size_t kClientId = kDhcp + 240 + 4 + 3;  // after option 53 and a pad

Bytes Arp(const Mac& destination, const Mac& source, uint16_t op, const Mac& sender, const Mac& target) {
  Bytes b = Ethernet(destination, source, 0x0806);
  Put(b, {0, 1, 8, 0, 6, 4});
  Put16(b, op);
  Put(b, sender);
  Put(b, {10, 0, 0, 2});
  Put(b, target);
  Put(b, {10, 0, 0, 1});
  return b;
}

TEST("MAC translation: ARP out names the wire MAC as sender, in the guest MAC as target") {
  Bytes request = Arp(kBroadcast, kGuest, 1, kGuest, Mac{});
  RewriteOutgoing(request.data(), request.size(), kPair, false);
  EXPECT_TRUE(MacAt(request, 6) == kWire);
  EXPECT_TRUE(MacAt(request, 0) == kBroadcast);
  EXPECT_TRUE(MacAt(request, 14 + 8) == kWire);
  EXPECT_TRUE(MacAt(request, 14 + 18) == Mac{});

  Bytes reply = Arp(kWire, kPeer, 2, kPeer, kWire);
  RewriteIncoming(reply.data(), reply.size(), kPair, false);
  EXPECT_TRUE(MacAt(reply, 0) == kGuest);
  EXPECT_TRUE(MacAt(reply, 6) == kPeer);
  EXPECT_TRUE(MacAt(reply, 14 + 8) == kPeer);
  EXPECT_TRUE(MacAt(reply, 14 + 18) == kGuest);
}

TEST("MAC translation: NDP solicitations and advertisements out carry the wire MAC, checksum still right") {
  struct Case {
    uint8_t type;
    size_t body;
    uint8_t option;
  };
  for (Case c : {Case{135, 24, 1}, Case{136, 24, 2}, Case{133, 8, 1}, Case{137, 40, 2}}) {
    Bytes frame = Ndp(kBroadcast, kGuest, c.type, c.body, c.option, kGuest);
    EXPECT_EQ(VerifyNdp(frame), 0);
    RewriteOutgoing(frame.data(), frame.size(), kPair, false);
    EXPECT_TRUE(MacAt(frame, 6) == kWire);
    EXPECT_TRUE(MacAt(frame, frame.size() - 6) == kWire);
    EXPECT_EQ(VerifyNdp(frame), 0);
  }
}

TEST("MAC translation: an NDP advertisement naming the wire MAC comes in naming the guest MAC") {
  Bytes frame = Ndp(kWire, kPeer, 136, 24, 2, kWire);
  RewriteIncoming(frame.data(), frame.size(), kPair, false);
  EXPECT_TRUE(MacAt(frame, 0) == kGuest);
  EXPECT_TRUE(MacAt(frame, frame.size() - 6) == kGuest);
  EXPECT_EQ(VerifyNdp(frame), 0);

  // A neighbour's own address in its solicitation is its own business.
  Bytes solicitation = Ndp(kWire, kPeer, 135, 24, 1, kPeer);
  RewriteIncoming(solicitation.data(), solicitation.size(), kPair, false);
  EXPECT_TRUE(MacAt(solicitation, solicitation.size() - 6) == kPeer);
  EXPECT_EQ(VerifyNdp(solicitation), 0);
}

TEST("MAC translation: a NEEDS_CSUM frame gets its MACs rewritten and its partial checksum left alone") {
  Bytes frame = Ndp(kBroadcast, kGuest, 135, 24, 1, kGuest);
  uint16_t partial = 0x1234;
  frame[kIcmp + 2] = 0x12;
  frame[kIcmp + 3] = 0x34;
  RewriteOutgoing(frame.data(), frame.size(), kPair, true);
  EXPECT_TRUE(MacAt(frame, frame.size() - 6) == kWire);
  EXPECT_EQ(Get16(frame, kIcmp + 2), partial);

  Bytes dhcp = Dhcp(kBroadcast, kGuest, 1, kGuest, false);
  dhcp[kUdp + 6] = 0x12;
  dhcp[kUdp + 7] = 0x34;
  RewriteOutgoing(dhcp.data(), dhcp.size(), kPair, true);
  EXPECT_TRUE(MacAt(dhcp, kDhcp + 28) == kWire);
  EXPECT_EQ(Get16(dhcp, kUdp + 6), partial);
}

TEST("MAC translation: DHCP requests out carry the wire MAC, replies in the guest MAC, checksums still right") {
  Bytes discover = Dhcp(kBroadcast, kGuest, 1, kGuest, true);
  EXPECT_EQ(VerifyUdp(discover), 0);
  RewriteOutgoing(discover.data(), discover.size(), kPair, false);
  EXPECT_TRUE(MacAt(discover, 6) == kWire);
  EXPECT_TRUE(MacAt(discover, kDhcp + 28) == kWire);
  EXPECT_TRUE(MacAt(discover, kClientId) == kWire);
  EXPECT_EQ(VerifyUdp(discover), 0);

  Bytes offer = Dhcp(kWire, kPeer, 2, kWire, true);
  RewriteIncoming(offer.data(), offer.size(), kPair, false);
  EXPECT_TRUE(MacAt(offer, 0) == kGuest);
  EXPECT_TRUE(MacAt(offer, kDhcp + 28) == kGuest);
  EXPECT_TRUE(MacAt(offer, kClientId) == kGuest);
  EXPECT_EQ(VerifyUdp(offer), 0);

  // No checksum (0) stays none.
  Bytes unchecked = Dhcp(kBroadcast, kGuest, 1, kGuest, false);
  RewriteOutgoing(unchecked.data(), unchecked.size(), kPair, false);
  EXPECT_TRUE(MacAt(unchecked, kDhcp + 28) == kWire);
  EXPECT_EQ(Get16(unchecked, kUdp + 6), 0);
}

TEST("MAC translation: frames for another MAC, and the other direction's DHCP, pass untouched") {
  Bytes frames[] = {Arp(kPeer, kBroadcast, 2, kPeer, kPeer), Ndp(kPeer, kBroadcast, 136, 24, 2, kPeer),
                    Dhcp(kPeer, kBroadcast, 2, kPeer, true)};
  for (Bytes& frame : frames) {
    Bytes before = frame;
    RewriteIncoming(frame.data(), frame.size(), kPair, false);
    EXPECT_TRUE(frame == before);
    RewriteOutgoing(frame.data(), frame.size(), kPair, false);
    EXPECT_TRUE(frame == before);
  }
  // A server reply naming the guest MAC on its way out is not a client's request.
  Bytes reply = Dhcp(kPeer, kGuest, 2, kGuest, true);
  RewriteOutgoing(reply.data(), reply.size(), kPair, false);
  EXPECT_TRUE(MacAt(reply, 6) == kWire);
  EXPECT_TRUE(MacAt(reply, kDhcp + 28) == kGuest);
}

TEST("MAC translation: a TCP segment gets only its Ethernet address rewritten, tagged or not") {
  for (bool tagged : {false, true}) {
    Bytes frame = Ethernet(kPeer, kGuest, tagged ? 0x8100 : 0x0800);
    if (tagged) Put(frame, {0, 5, 0x08, 0x00});
    size_t ip = frame.size();
    Put(frame, {0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1});
    // A payload that happens to hold the guest MAC is data, not an address.
    Put(frame, {0, 22, 0, 68});
    Put(frame, kGuest);
    Zeros(frame, 30);
    Bytes expected = frame;
    for (size_t i = 0; i < 6; ++i) expected[6 + i] = kWire[i];
    RewriteOutgoing(frame.data(), frame.size(), kPair, false);
    EXPECT_TRUE(frame == expected);
    EXPECT_TRUE(MacAt(frame, ip + 24) == kGuest);
  }
}

TEST("MAC translation: a frame cut short anywhere is rewritten only as far as it goes") {
  Bytes whole[] = {Arp(kBroadcast, kGuest, 1, kGuest, Mac{}), Ndp(kBroadcast, kGuest, 135, 24, 1, kGuest),
                   Dhcp(kBroadcast, kGuest, 1, kGuest, true)};
  for (const Bytes& frame : whole) {
    for (size_t len = 0; len <= frame.size(); ++len) {
      Bytes copy = frame;
      RewriteOutgoing(copy.data(), len, kPair, false);
      // Nothing past the prefix is touched.
      EXPECT_TRUE(std::equal(copy.begin() + static_cast<long>(len), copy.end(), frame.begin() + static_cast<long>(len)));
    }
  }
}

}  // namespace
}  // namespace virga::virtio
