#include "vm/machine_layout.h"

#include <cstdio>

namespace virga {

namespace {

std::string Mac(const std::array<uint8_t, 6>& m) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return text;
}

std::string Size(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

std::string DiskText(const MachineLayout::Disk& d) {
  if (!d.present) return "no disk";
  return "a " + Size(d.bytes) + (d.read_only ? " read-only disk" : " disk");
}

std::string Topology(const MachineLayout& l) {
  return std::to_string(l.cpus) + " vCPUs (maxcpus " + std::to_string(l.max_cpus) + ", sockets " +
         std::to_string(l.sockets) + ", cores " + std::to_string(l.cores) + ", threads " + std::to_string(l.threads) +
         ")";
}

}  // namespace

void MachineLayout::Encode(state::ByteWriter& out) const {
  out.U64(memory_bytes);
  for (uint32_t v : {cpus, max_cpus, sockets, cores, threads}) out.U32(v);
  for (const Disk& d : disks) {
    out.Bool(d.present);
    out.U64(d.bytes);
    out.Bool(d.read_only);
  }
  for (const Nic& n : nics) {
    out.Bool(n.present);
    out.Bytes(n.mac.data(), n.mac.size());
  }
  out.Bool(balloon);
  out.Bool(balloon_deflate_on_oom);
  out.Bool(balloon_free_page_reporting);
  bool translating = false;
  for (const Nic& n : nics) translating = translating || n.wire_mac != n.mac;
  if (translating) {
    for (const Nic& n : nics) out.Bytes(n.wire_mac.data(), n.wire_mac.size());
  }
}

MachineLayout MachineLayout::Decode(state::ByteReader& in) {
  MachineLayout l;
  l.memory_bytes = in.U64();
  for (uint32_t* v : {&l.cpus, &l.max_cpus, &l.sockets, &l.cores, &l.threads}) *v = in.U32();
  for (Disk& d : l.disks) {
    d.present = in.Bool();
    d.bytes = in.U64();
    d.read_only = in.Bool();
  }
  for (Nic& n : l.nics) {
    n.present = in.Bool();
    in.Bytes(n.mac.data(), n.mac.size());
  }
  l.balloon = in.Bool();
  l.balloon_deflate_on_oom = in.Bool();
  l.balloon_free_page_reporting = in.Bool();
  for (Nic& n : l.nics) {
    if (in.remaining() == 0) {
      n.wire_mac = n.mac;
    } else {
      in.Bytes(n.wire_mac.data(), n.wire_mac.size());
    }
  }
  in.ExpectEnd();
  return l;
}

std::vector<std::string> LayoutDifferences(const MachineLayout& s, const MachineLayout& c, const std::string& other,
                                           WireMac wire_mac) {
  std::vector<std::string> out;
  if (s.cpus != c.cpus || s.max_cpus != c.max_cpus || s.sockets != c.sockets || s.cores != c.cores ||
      s.threads != c.threads) {
    out.push_back("-smp: " + other + " has " + Topology(s) + ", the command line " + Topology(c));
  }
  if (s.memory_bytes != c.memory_bytes) {
    out.push_back("-m: " + other + " has " + Size(s.memory_bytes) + ", the command line " + Size(c.memory_bytes));
  }
  for (size_t i = 0; i < s.disks.size(); ++i) {
    const auto& a = s.disks[i];
    const auto& b = c.disks[i];
    if (a.present != b.present || a.bytes != b.bytes || a.read_only != b.read_only) {
      out.push_back("block slot " + std::to_string(i) + " (vd" + std::string(1, static_cast<char>('a' + i)) +
                    "): " + other + " has " + DiskText(a) + ", the command line " + DiskText(b));
    }
  }
  for (size_t i = 0; i < s.nics.size(); ++i) {
    const auto& a = s.nics[i];
    const auto& b = c.nics[i];
    std::string slot = "NIC slot " + std::to_string(i) + " (eth" + std::to_string(i) + ")";
    if (a.present != b.present) {
      out.push_back(slot + ": " + other + " has " + (a.present ? "a tap" : "no tap") + ", the command line " +
                    (b.present ? "a tap" : "no tap"));
    }
    if (wire_mac == WireMac::kKept && b.mac_given && a.wire_mac != b.mac) {
      out.push_back(slot + ": " + other + " has MAC " + Mac(a.wire_mac) + " on the network, the command line gives " +
                    Mac(b.mac) + "; leave mac= out to keep " + other + "'s");
    }
  }
  if (s.balloon != c.balloon) {
    out.push_back("-device virtio-balloon-device: " + other + " has " + (s.balloon ? "one" : "none") +
                  ", the command line " + (c.balloon ? "one" : "none"));
  } else if (s.balloon && (s.balloon_deflate_on_oom != c.balloon_deflate_on_oom ||
                           s.balloon_free_page_reporting != c.balloon_free_page_reporting)) {
    out.push_back("-device virtio-balloon-device: deflate-on-oom/free-page-reporting differ from " + other + "'s");
  }
  return out;
}

}  // namespace virga
