#include "process/control_requests.h"

#include <chrono>
#include <cstdio>

#include "common/error.h"
#include "vm/snapshot.h"

namespace virga {

namespace {

uint64_t StartToFirstEntryNs(const RunStatsSnapshot& s, uint64_t process_start_ns) {
  return s.first_entry_ns == 0 ? 0 : s.first_entry_ns - process_start_ns;
}

Json VcpusJson(const std::vector<VcpuSummary>& vcpus, uint64_t process_start_ns) {
  Json::Array out;
  for (const VcpuSummary& v : vcpus) {
    const RunStatsSnapshot& s = v.stats;
    Json stats(Json::Object{{"exits", Json(s.exits)},
                            {"ioExits", Json(s.io_exits)},
                            {"mmioExits", Json(s.mmio_exits)},
                            {"signalExits", Json(s.signal_exits)},
                            {"runNs", Json(s.run_ns)},
                            {"exitHandlingNs", Json(s.exit_handling_ns)},
                            {"startToFirstEntryNs", Json(StartToFirstEntryNs(s, process_start_ns))}});
    out.push_back(Json(Json::Object{{"index", Json(v.index)},
                                    {"apicId", Json(v.apic_id)},
                                    {"threadId", Json(static_cast<int64_t>(v.thread_id))},
                                    {"halted", Json(v.halted)},
                                    {"stats", stats}}));
  }
  return Json(std::move(out));
}

// Typed access to a request's arguments.
class Args {
 public:
  explicit Args(const Json& args) : args_(args) {}
  const std::string& String(const char* key) const {
    const Json* v = args_.Find(key);
    if (v == nullptr || !v->is_string()) throw VmmError(std::string("control request: '") + key + "' must be a string");
    return v->as_string();
  }
  std::string OptionalString(const char* key) const { return args_.Find(key) ? String(key) : ""; }
  bool Bool(const char* key) const {
    const Json* v = args_.Find(key);
    if (v == nullptr || !v->is_bool()) throw VmmError(std::string("control request: '") + key + "' must be a boolean");
    return v->as_bool();
  }
  uint64_t Unsigned(const char* key) const {
    const Json* v = args_.Find(key);
    if (v == nullptr || !v->is_number() || v->as_number() < 0 || v->as_number() > 9007199254740991.0) {
      throw VmmError(std::string("control request: '") + key + "' must be a non-negative integer");
    }
    return static_cast<uint64_t>(v->as_number());
  }
  bool Has(const char* key) const { return args_.Find(key) != nullptr; }

 private:
  const Json& args_;
};

DeviceAddRequest ToDeviceAdd(const Args& a) {
  DeviceAddRequest r;
  r.id = a.String("id");
  const std::string& kind = a.String("kind");
  if (kind != "block" && kind != "net" && kind != "vfio") {
    throw VmmError("control request: kind must be block, net or vfio");
  }
  r.kind = kind == "block" ? DeviceAddRequest::Kind::kBlock
           : kind == "net" ? DeviceAddRequest::Kind::kNet
                           : DeviceAddRequest::Kind::kVfio;
  if (a.Has("slot")) r.slot = static_cast<uint32_t>(a.Unsigned("slot"));
  r.slot_field = a.Has("slotField") ? a.String("slotField") : "addr";
  r.backend = a.OptionalString("backend");
  r.backend_field = a.OptionalString("backendField");
  r.host = a.OptionalString("host");
  r.sysfsdev = a.OptionalString("sysfsdev");
  if (a.Has("bus")) r.bus = a.String("bus");
  if (a.Has("mac")) {
    r.mac = ParseMac(a.String("mac"));
    if (!r.mac) throw VmmError("mac: '" + a.String("mac") + "' is not a MAC address like 52:54:00:12:34:56");
  }
  return r;
}

}  // namespace

Json RunControlRequest(Machine& machine, const std::string& op, const Json& args, std::vector<UniqueFd> fds,
                       const ControlContext& context) {
  Args a(args);
  // Looked up per request: a board without these refuses only them.
  auto devices = [&machine]() -> HotplugDevices& { return machine.devices(); };
  if (op == "pause") {
    machine.Pause();
  } else if (op == "resume") {
    machine.Resume();
  } else if (op == "reset") {
    machine.Reset();
  } else if (op == "powerdown") {
    machine.PressPowerButton();
  } else if (op == "vcpus") {
    return VcpusJson(machine.Vcpus(), context.process_start_ns);
  } else if (op == "blockdev-add") {
    devices().AddBlockBackend(a.String("nodeName"), {a.String("filename"), a.Bool("readOnly"), a.Bool("direct")});
  } else if (op == "blockdev-del") {
    devices().RemoveBlockBackend(a.String("nodeName"));
  } else if (op == "netdev-add") {
    std::string fd_name = a.OptionalString("fdName");
    UniqueFd fd;
    if (!fd_name.empty()) {
      if (fds.empty()) throw VmmError("fd: the descriptor named '" + fd_name + "' did not arrive");
      fd = std::move(fds.front());
    }
    devices().AddNetBackend(a.String("id"), a.OptionalString("ifname"), std::move(fd), fd_name);
  } else if (op == "netdev-del") {
    devices().RemoveNetBackend(a.String("id"));
  } else if (op == "device-add") {
    devices().AddDevice(ToDeviceAdd(a));
  } else if (op == "device-del") {
    devices().DeleteDevice(a.String("id"));
  } else if (op == "balloon") {
    devices().SetBalloonTarget(a.Unsigned("bytes"));
  } else if (op == "query-balloon") {
    return devices().QueryBalloon();
  } else if (op == "devices") {
    return devices().Describe();
  } else if (op == "snapshot") {
    auto started = std::chrono::steady_clock::now();
    SnapshotSizes sizes = WriteSnapshot(machine, a.String("dir"), context.vmm_version);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    return Json(Json::Object{{"stateBytes", Json(sizes.state_bytes)},
                             {"memoryBytes", Json(sizes.memory_bytes)},
                             {"totalBytes", Json(machine.memory().size())},
                             {"ms", Json(static_cast<uint64_t>(ms.count()))}});
  } else {
    throw VmmError("unknown control request '" + op + "'");
  }
  return Json();
}

std::string RunStatsLogLine(const VcpuSummary& v, uint64_t process_start_ns) {
  auto millis = [](uint64_t ns) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f ms", static_cast<double>(ns) / 1e6);
    return std::string(text);
  };
  const RunStatsSnapshot& s = v.stats;
  std::string line = "vcpu" + std::to_string(v.index) + ": " + std::to_string(s.exits) + " exits (" +
                     std::to_string(s.io_exits) + " I/O, " + std::to_string(s.mmio_exits) + " MMIO, " +
                     std::to_string(s.signal_exits) + " signal), " + millis(s.run_ns) + " in KVM_RUN, " +
                     millis(s.exit_handling_ns) + " handling exits";
  if (s.first_entry_ns != 0) {
    line += ", first guest entry " + millis(StartToFirstEntryNs(s, process_start_ns)) + " after start";
  }
  return line;
}

}  // namespace virga
