#include "cli/config_json.h"

#include "cli/flags.h"
#include "common/json_quote.h"

namespace virga::cli {

namespace {

std::string Bool(bool value) { return value ? "true" : "false"; }

const char* SerialKind(Serial::Kind kind) {
  switch (kind) {
    case Serial::Kind::kStdio: return "stdio";
    case Serial::Kind::kPty: return "pty";
    case Serial::Kind::kNone: return "none";
    case Serial::Kind::kFile: return "file";
    case Serial::Kind::kSocket: return "socket";
  }
  return "none";
}

}  // namespace

std::string ToJson(const VmmConfig& c) {
  std::string out = "{";
  if (c.name) out += "\"name\":" + JsonQuote(*c.name) + ",";
  out += "\"machine\":" + JsonQuote(c.machine) + ",\"kernel\":" + JsonQuote(c.kernel) + ",";
  if (c.initrd) out += "\"initrd\":" + JsonQuote(*c.initrd) + ",";
  out += "\"append\":" + JsonQuote(c.append) + ",";
  out += std::string("\"bootEntry\":\"") + (c.boot_entry == BootEntryKind::kPvh ? "pvh" : "linux64") + "\",";
  out += "\"smp\":{\"cpus\":" + std::to_string(c.smp.cpus) + ",\"maxCpus\":" + std::to_string(c.smp.max_cpus) +
         ",\"sockets\":" + std::to_string(c.smp.sockets) + ",\"cores\":" + std::to_string(c.smp.cores) +
         ",\"threads\":" + std::to_string(c.smp.threads) + "},";
  out += "\"memoryBytes\":" + std::to_string(c.memory_bytes) + ",";
  if (c.mem_share) out += "\"memShare\":true,";
  if (c.mem_path) out += "\"memPath\":" + JsonQuote(*c.mem_path) + ",";
  out += "\"drives\":[";
  for (size_t i = 0; i < c.drives.size(); ++i) {
    const Drive& d = c.drives[i];
    out += std::string(i ? "," : "") + "{\"id\":" + JsonQuote(d.id) + ",\"file\":" + JsonQuote(d.file) +
           ",\"readOnly\":" + Bool(d.read_only) + ",\"direct\":" + Bool(d.direct) + "}";
  }
  out += "],\"netdevs\":[";
  for (size_t i = 0; i < c.netdevs.size(); ++i) {
    const Netdev& n = c.netdevs[i];
    out += std::string(i ? "," : "") + "{\"id\":" + JsonQuote(n.id) +
           (n.fd ? ",\"fd\":" + std::to_string(*n.fd) : ",\"ifname\":" + JsonQuote(n.ifname)) + "}";
  }
  out += "],\"devices\":[";
  for (size_t i = 0; i < c.devices.size(); ++i) {
    const Device& d = c.devices[i];
    std::string slot = d.slot ? ",\"slot\":" + std::to_string(*d.slot) : "";
    out += i ? "," : "";
    if (d.pci) {
      std::string place = ",\"bus\":" + JsonQuote(d.bus) + ",\"addr\":" + JsonQuote(FormatPciAddress(d.pci_addr));
      switch (d.kind) {
        case Device::Kind::kBlock:
          out += "{\"driver\":\"virtio-blk-pci\",\"id\":" + JsonQuote(d.id) + ",\"drive\":" + JsonQuote(d.backend) + place + "}";
          break;
        case Device::Kind::kNet:
          out += "{\"driver\":\"virtio-net-pci\",\"id\":" + JsonQuote(d.id) + ",\"netdev\":" + JsonQuote(d.backend) +
                 (d.mac ? ",\"mac\":" + JsonQuote(*d.mac) : "") + place + "}";
          break;
        case Device::Kind::kBalloon:
          out += "{\"driver\":\"virtio-balloon-pci\",\"id\":" + JsonQuote(d.id) + place + ",\"deflateOnOom\":" +
                 Bool(d.deflate_on_oom) + ",\"freePageReporting\":" + Bool(d.free_page_reporting) + "}";
          break;
        case Device::Kind::kRootPort:
          out += "{\"driver\":\"pcie-root-port\",\"id\":" + JsonQuote(d.id) + ",\"port\":" + std::to_string(d.port) +
                 place + ",\"multifunction\":" + Bool(d.multifunction) +
                 (d.chassis ? ",\"chassis\":" + std::to_string(*d.chassis) : "") + "}";
          break;
        case Device::Kind::kVfio:
          out += "{\"driver\":\"vfio-pci\",\"id\":" + JsonQuote(d.id) +
                 (d.host.empty() ? ",\"sysfsdev\":" + JsonQuote(d.sysfsdev) : ",\"host\":" + JsonQuote(d.host)) + place + "}";
          break;
      }
      continue;
    }
    switch (d.kind) {
      case Device::Kind::kBlock:
        out += "{\"driver\":\"virtio-blk-device\",\"id\":" + JsonQuote(d.id) + ",\"drive\":" + JsonQuote(d.backend) + slot + "}";
        break;
      case Device::Kind::kNet:
        out += "{\"driver\":\"virtio-net-device\",\"id\":" + JsonQuote(d.id) + ",\"netdev\":" + JsonQuote(d.backend) +
               (d.mac ? ",\"mac\":" + JsonQuote(*d.mac) : "") + slot + "}";
        break;
      case Device::Kind::kBalloon:
        out += "{\"driver\":\"virtio-balloon-device\",\"id\":" + JsonQuote(d.id) + ",\"deflateOnOom\":" +
               Bool(d.deflate_on_oom) + ",\"freePageReporting\":" + Bool(d.free_page_reporting) + "}";
        break;
      case Device::Kind::kRootPort:
        break;  // always PCI, above
      case Device::Kind::kVfio:
        break;  // always pci
    }
  }
  out += std::string("],\"serial\":{\"kind\":\"") + SerialKind(c.serial.kind) + "\"";
  if (c.serial.kind == Serial::Kind::kFile || c.serial.kind == Serial::Kind::kSocket) {
    out += ",\"path\":" + JsonQuote(c.serial.path);
  }
  out += "},";
  if (c.qmp) {
    if (c.qmp->kind == Qmp::Kind::kUnix) {
      out += "\"qmp\":{\"kind\":\"unix\",\"path\":" + JsonQuote(c.qmp->path);
    } else {
      out += "\"qmp\":{\"kind\":\"tcp\",\"host\":" + JsonQuote(c.qmp->host) + ",\"port\":" + std::to_string(c.qmp->port);
    }
    out += ",\"rateLimit\":" + std::to_string(c.qmp->rate_limit) + "},";
  }
  if (c.log_file) out += "\"logFile\":" + (c.log_file->empty() ? std::string("null") : JsonQuote(*c.log_file)) + ",";
  out += "\"daemonize\":" + Bool(c.daemonize) + ",";
  if (c.pidfile) out += "\"pidfile\":" + JsonQuote(*c.pidfile) + ",";
  out += "\"startPaused\":" + Bool(c.start_paused);
  if (c.incoming) out += ",\"incoming\":" + JsonQuote(*c.incoming);
  out += "}";
  return out;
}

}  // namespace virga::cli
