// A NIC whose guest and network know it by different MACs: a clone
// restored from a template keeps the MAC its guest read when it booted
// (Linux never reads it again), while the network sees the clone's own.
// The VMM rewrites the few places a frame names the NIC's own MAC on the
// way through (docs/devices.md, "MAC addresses"): the Ethernet address,
// ARP, IPv6 neighbour discovery options, and the DHCP client hardware
// address, updating checksums so the frames stay valid.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace virga::virtio {

struct MacPair {
  std::array<uint8_t, 6> guest;  // what the guest's driver read at probe
  std::array<uint8_t, 6> wire;   // what the network sees
};

// How far into a frame a rewrite can reach: neighbour discovery and DHCP
// fit well inside a standard MTU. A frame's bytes past this are left as
// they are, so a transmit copies at most this much out of guest memory.
constexpr size_t kMacRewriteSpan = 2048;
// The Ethernet header with one VLAN tag: all a TCP segment (or any
// segmentation-offload frame) needs rewritten.
constexpr size_t kMacRewriteEthernetSpan = 18;

// `frame` starts at the Ethernet destination; `len` may be only a prefix
// of the frame. `checksum_partial`: the virtio-net header has
// VIRTIO_NET_HDR_F_NEEDS_CSUM, so the transport checksum holds only the
// pseudo-header sum and is completed later over the rewritten bytes.
// Guest → network: the guest MAC becomes the wire MAC.
void RewriteOutgoing(uint8_t* frame, size_t len, const MacPair& macs, bool checksum_partial);
// Network → guest: the wire MAC becomes the guest MAC.
void RewriteIncoming(uint8_t* frame, size_t len, const MacPair& macs, bool checksum_partial);

}  // namespace virga::virtio
