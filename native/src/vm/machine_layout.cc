#include "vm/machine_layout.h"

#include <cstdio>
#include <map>

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

// The guest read the MAC when it booted and keeps it.
std::string MacDifference(const std::string& where, const std::array<uint8_t, 6>& saved,
                          const std::array<uint8_t, 6>& given, const std::string& other) {
  return where + other + "'s guest has MAC " + Mac(saved) + " (read when it booted), the command line gives " +
         Mac(given) + "; leave mac= out to keep " + other + "'s";
}

std::string PciAddr(const MachineLayout::PciFunction& f) {
  char text[96];
  if (f.behind_port) {
    std::snprintf(text, sizeof(text), "bus %s (the root port at pcie.0 addr 0x%x.%u) addr 0x%x.%u", f.bus.c_str(),
                  f.port_slot, f.port_function, f.slot, f.function);
  } else {
    std::snprintf(text, sizeof(text), "pcie.0 addr 0x%x.%u", f.slot, f.function);
  }
  return text;
}

std::string PciText(const MachineLayout::PciFunction* f) {
  if (f == nullptr) return "nothing";
  std::string text = f->driver + (f->id.empty() ? "" : " '" + f->id + "'");
  if (f->disk.present) text += " (" + DiskText(f->disk) + ")";
  if (f->driver == "pcie-root-port") text += " (port " + std::to_string(f->port) + ")";
  return text;
}

void EncodeFunction(const MachineLayout::PciFunction& f, state::ByteWriter& out) {
  out.U32(f.slot);
  out.U32(f.function);
  out.String(f.driver);
  out.String(f.id);
  out.U64(f.disk.bytes);
  out.Bool(f.disk.read_only);
  out.Bytes(f.nic.mac.data(), f.nic.mac.size());
  out.Bool(f.deflate_on_oom);
  out.Bool(f.free_page_reporting);
}

MachineLayout::PciFunction DecodeFunction(state::ByteReader& in) {
  MachineLayout::PciFunction f;
  f.slot = in.U32();
  f.function = in.U32();
  f.driver = in.String();
  f.id = in.String();
  f.disk.present = f.driver == "virtio-blk-pci";
  f.disk.bytes = in.U64();
  f.disk.read_only = in.Bool();
  f.nic.present = f.driver == "virtio-net-pci";
  in.Bytes(f.nic.mac.data(), f.nic.mac.size());
  f.deflate_on_oom = in.Bool();
  f.free_page_reporting = in.Bool();
  return f;
}

// Compared by address: the guest found each function where it is and keeps using it there.
void PciDifferences(const std::vector<MachineLayout::PciFunction>& saved,
                    const std::vector<MachineLayout::PciFunction>& command_line, const std::string& other,
                    std::vector<std::string>* out) {
  std::map<std::array<uint32_t, 5>, std::pair<const MachineLayout::PciFunction*, const MachineLayout::PciFunction*>>
      by_address;
  for (const auto& f : saved) by_address[f.place()].first = &f;
  for (const auto& f : command_line) by_address[f.place()].second = &f;
  for (const auto& [address, pair] : by_address) {
    const auto* a = pair.first;
    const auto* b = pair.second;
    std::string where = PciAddr(a != nullptr ? *a : *b) + ": ";
    if (a == nullptr || b == nullptr || a->driver != b->driver ||
        (a->disk.present && (a->disk.bytes != b->disk.bytes || a->disk.read_only != b->disk.read_only)) ||
        (a->driver == "pcie-root-port" && a->port != b->port) ||
        (a->driver == "virtio-balloon-pci" &&
         (a->deflate_on_oom != b->deflate_on_oom || a->free_page_reporting != b->free_page_reporting))) {
      std::string suffix = a != nullptr && b != nullptr && a->driver == "virtio-balloon-pci" && a->driver == b->driver
                               ? " (deflate-on-oom/free-page-reporting differ)"
                               : "";
      out->push_back(where + other + " has " + PciText(a) + ", the command line " + PciText(b) + suffix);
      continue;
    }
    if (a->nic.present && b->nic.mac_given && a->nic.mac != b->nic.mac) {
      out->push_back(MacDifference(where, a->nic.mac, b->nic.mac, other));
    }
  }
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
  out.String(machine);
  std::vector<const PciFunction*> plain, extended;
  for (const PciFunction& f : pci) (f.extended() ? extended : plain).push_back(&f);
  out.U32(static_cast<uint32_t>(plain.size()));
  for (const PciFunction* f : plain) EncodeFunction(*f, out);
  // Last, and only when some NIC translates, so a snapshot without a
  // clone's own MAC is written as before. Root ports and what is behind
  // them come after (the wire MACs are then always written, so a reader
  // can tell), so a layout without them is written as before too.
  bool translating = false;
  for (const Nic& n : nics) translating = translating || n.wire_mac != n.mac;
  if (translating || !extended.empty()) {
    for (const Nic& n : nics) out.Bytes(n.wire_mac.data(), n.wire_mac.size());
  }
  if (extended.empty()) return;
  out.U32(static_cast<uint32_t>(extended.size()));
  for (const PciFunction* f : extended) {
    EncodeFunction(*f, out);
    out.U32(f->port);
    out.Bool(f->behind_port);
    out.U32(f->port_slot);
    out.U32(f->port_function);
    out.String(f->bus);
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
  l.machine = in.String();
  uint32_t count = in.Count(8);
  for (uint32_t i = 0; i < count; ++i) l.pci.push_back(DecodeFunction(in));
  bool more = in.remaining() != 0;
  for (Nic& n : l.nics) {
    if (more) {
      in.Bytes(n.wire_mac.data(), n.wire_mac.size());
    } else {
      n.wire_mac = n.mac;
    }
  }
  if (in.remaining() != 0) {
    uint32_t extended = in.Count(8);
    for (uint32_t i = 0; i < extended; ++i) {
      PciFunction f = DecodeFunction(in);
      f.port = in.U32();
      f.behind_port = in.Bool();
      f.port_slot = in.U32();
      f.port_function = in.U32();
      f.bus = in.String();
      l.pci.push_back(std::move(f));
    }
  }
  in.ExpectEnd();
  return l;
}

std::vector<std::string> LayoutDifferences(const MachineLayout& s, const MachineLayout& c, const std::string& other,
                                           WireMac wire_mac) {
  std::vector<std::string> out;
  if (s.machine != c.machine) {
    // Its devices would be compared slot against address: one difference says it all.
    out.push_back("-machine: " + other + " is a " + s.machine + ", the command line a " + c.machine);
    return out;
  }
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
  PciDifferences(s.pci, c.pci, other, &out);
  return out;
}

}  // namespace virga
