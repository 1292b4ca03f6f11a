// virga-vmm: one VM per process, started exactly like StratoVirt. The guest
// boots from here without waiting for anything else. With -qmp the socket
// listens from the start and the TypeScript control plane
// (process/control_plane.h) takes the VM when the first client connects, and
// stays: in the control-plane host named by $VIRGA_CONTROL_HOST (virgad sets
// it), else in a companion process of its own.
//
// Exit: guest power-off/reset, QMP quit and SIGTERM/SIGINT/SIGHUP end with
// 0; a VMM error with 1 and "virga-vmm: error: <reason>" on stderr; a bad
// command line with 2. The VM is torn down, the QMP socket and pidfile removed.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <utility>

#include "cli/command_line.h"
#include "cli/config_json.h"
#include "cli/usage_error.h"
#include "common/fd.h"
#include "common/json_quote.h"
#include "common/json.h"
#include "process/control_plane.h"
#include "process/control_requests.h"
#include "process/daemon.h"
#include "process/pidfile.h"
#include "process/qmp_listener.h"
#include "process/vmm_log.h"
#include "vm/machine.h"
#include "vm/snapshot.h"
#include "migration/destination.h"
#include "migration/source.h"

namespace virga {
namespace {

constexpr char kVersion[] = "0.1.0";
// How long a migration source lingers after completing (query-migrate says
// "completed" meanwhile) before it ends with SHUTDOWN.
constexpr int64_t kMigratedExitDelayMs = 1000;
// After the control-plane host closes the channel: how long it is retried,
// and how often, before the VM starts a companion (virgad restarts a host
// that died well within this). QMP is back within about this long.
constexpr int64_t kHostRetryMs = 1000;
constexpr int64_t kHostRetryIntervalMs = 100;
// How often a VM on a companion looks for the host to move back to.
constexpr int64_t kHostProbeIntervalMs = 2000;

PciDeviceConfig ToPciDeviceConfig(const cli::VmmConfig& c, const cli::Device& device) {
  PciDeviceConfig p;
  p.id = device.id;
  p.bus = device.bus;
  p.slot = device.pci_addr.slot;
  p.function = device.pci_addr.function;
  p.multifunction = device.multifunction;
  p.backend = device.backend;
  switch (device.kind) {
    case cli::Device::Kind::kBlock:
      p.kind = PciDeviceConfig::Kind::kBlock;
      for (const cli::Drive& drive : c.drives) {
        if (drive.id == device.backend) p.file = {drive.file, drive.read_only, drive.direct};
      }
      break;
    case cli::Device::Kind::kNet:
      p.kind = PciDeviceConfig::Kind::kNet;
      for (const cli::Netdev& netdev : c.netdevs) {
        if (netdev.id != device.backend) continue;
        p.ifname = netdev.ifname;
        p.fd = netdev.fd.value_or(-1);
      }
      if (device.mac) p.mac = ParseMac(*device.mac);
      break;
    case cli::Device::Kind::kBalloon:
      p.kind = PciDeviceConfig::Kind::kBalloon;
      p.balloon = {device.deflate_on_oom, device.free_page_reporting};
      break;
    case cli::Device::Kind::kRootPort:
      break;  // not a virtio function: ToMachineConfig takes it
    case cli::Device::Kind::kVfio:
      p.kind = PciDeviceConfig::Kind::kVfio;
      p.host = device.host;
      p.sysfsdev = device.sysfsdev;
      break;
  }
  return p;
}

MachineConfig ToMachineConfig(const cli::VmmConfig& c) {
  MachineConfig m;
  m.type = c.machine == "q35" ? MachineType::kQ35 : MachineType::kMicrovm;
  m.memory_bytes = c.memory_bytes;
  m.mem_share = c.mem_share;
  m.mem_path = c.mem_path.value_or("");
  m.cpus = c.smp.cpus;
  m.max_cpus = c.smp.max_cpus;
  m.topology = {c.smp.sockets, c.smp.cores, c.smp.threads};
  m.kernel = c.kernel;
  m.initrd = c.initrd.value_or("");
  m.cmdline = c.append;
  m.boot_entry = c.boot_entry == cli::BootEntryKind::kPvh ? x86::BootEntry::kPvh : x86::BootEntry::kLinux64;
  switch (c.serial.kind) {
    case cli::Serial::Kind::kStdio: m.serial.kind = ChardevConfig::Kind::kStdio; break;
    case cli::Serial::Kind::kPty: m.serial.kind = ChardevConfig::Kind::kPty; break;
    case cli::Serial::Kind::kNone: m.serial.kind = ChardevConfig::Kind::kNone; break;
    case cli::Serial::Kind::kFile: m.serial.kind = ChardevConfig::Kind::kFile; break;
    case cli::Serial::Kind::kSocket: m.serial.kind = ChardevConfig::Kind::kSocket; break;
  }
  m.serial.path = c.serial.path;
  // Devices with addr= take their slot; the rest fill the free slots of
  // their kind in -device order (the first virtio-blk-device is vda).
  std::set<uint32_t> taken_disk, taken_nic;
  for (const cli::Device& device : c.devices) {
    if (device.slot) (device.kind == cli::Device::Kind::kNet ? taken_nic : taken_disk).insert(*device.slot);
  }
  auto next_free = [](std::set<uint32_t>& taken) {
    uint32_t slot = 0;
    while (taken.count(slot)) ++slot;
    taken.insert(slot);
    return slot;
  };
  for (const cli::Device& device : c.devices) {
    if (device.kind == cli::Device::Kind::kRootPort) {
      m.root_ports.push_back(
          {device.id, device.pci_addr.slot, device.pci_addr.function, device.port, device.multifunction});
      continue;
    }
    if (device.pci) {
      m.pci_devices.push_back(ToPciDeviceConfig(c, device));
      continue;
    }
    switch (device.kind) {
      case cli::Device::Kind::kBlock: {
        uint32_t slot = device.slot ? *device.slot : next_free(taken_disk);
        for (const cli::Drive& drive : c.drives) {
          if (drive.id != device.backend) continue;
          m.disks.push_back({slot, device.id, drive.id, {drive.file, drive.read_only, drive.direct}});
        }
        break;
      }
      case cli::Device::Kind::kNet: {
        uint32_t slot = device.slot ? *device.slot : next_free(taken_nic);
        for (const cli::Netdev& netdev : c.netdevs) {
          if (netdev.id != device.backend) continue;
          NicConfig nic{slot, device.id, netdev.id, netdev.ifname, netdev.fd.value_or(-1), std::nullopt};
          if (device.mac) nic.mac = ParseMac(*device.mac);
          m.nics.push_back(nic);
        }
        break;
      }
      case cli::Device::Kind::kBalloon:
        m.balloon = BalloonDeviceConfig{device.id, {device.deflate_on_oom, device.free_page_reporting}};
        break;
      case cli::Device::Kind::kRootPort:
        break;  // PCI: above
      case cli::Device::Kind::kVfio:
        break;  // always pci
    }
  }
  // docs/devices.md: default MACs derive from the name, else the QMP socket.
  m.identity = c.name ? *c.name : c.qmp ? (c.qmp->kind == cli::Qmp::Kind::kUnix ? c.qmp->path : c.qmp->host + ":" + std::to_string(c.qmp->port)) : "";
  return m;
}

// Set before main runs: the reference for "how long until the guest ran".
const uint64_t kProcessStartNs = RunStats::NowNs();

// Device events (BALLOON_CHANGED) from VMM threads, waiting for the main
// loop to pass them to the control plane.
class EventMailbox {
 public:
  EventMailbox() : event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!event_.valid()) throw ErrnoError("eventfd");
  }
  void Post(std::string line) {
    {
      std::lock_guard guard(lock_);
      lines_.push_back(std::move(line));
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(event_.get(), &one, sizeof(one));
  }
  std::vector<std::string> Take() {
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(event_.get(), &count, sizeof(count));
    std::lock_guard guard(lock_);
    return std::exchange(lines_, {});
  }
  int fd() const { return event_.get(); }

 private:
  UniqueFd event_;
  std::mutex lock_;
  std::vector<std::string> lines_;
};

// Where an exit request from a VMM thread waits for the main loop.
class ExitMailbox {
 public:
  ExitMailbox() : event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!event_.valid()) throw ErrnoError("eventfd");
  }
  void Post(const ExitReason& reason) {
    {
      std::lock_guard guard(lock_);
      if (!reason_) reason_ = reason;
    }
    uint64_t one = 1;
    ssize_t ignored = ::write(event_.get(), &one, sizeof(one));
    (void)ignored;
  }
  std::optional<ExitReason> Take() {
    uint64_t count;
    ssize_t ignored = ::read(event_.get(), &count, sizeof(count));
    (void)ignored;
    std::lock_guard guard(lock_);
    return reason_;
  }
  int fd() const { return event_.get(); }

 private:
  UniqueFd event_;
  std::mutex lock_;
  std::optional<ExitReason> reason_;
};

class VmProcess {
 public:
  VmProcess(const cli::VmmConfig& config, DaemonReport& daemon)
      : config_(config), daemon_(daemon), log_(config.log_file) {
    if (const char* host = std::getenv("VIRGA_CONTROL_HOST"); host != nullptr) host_path_ = host;
  }

  int Run() {
    const cli::VmmConfig& c = config_;
    log_.Log("starting " + c.name.value_or("vm") + ": " + std::to_string(c.smp.cpus) + " vCPU(s), " +
             std::to_string(c.memory_bytes >> 20) + " MiB");
    // Before any thread exists, so every thread inherits the mask and the
    // signals reach only the main loop's signalfd.
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&signals, sig);
    ::sigprocmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    signal_fd_.Reset(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    UniqueFd migration_listener;
    try {
      std::unique_ptr<OpenedSnapshot> snapshot;
      RestoreSource source{};
      if (c.incoming && c.incoming->rfind("file:", 0) == 0) {
        snapshot = std::make_unique<OpenedSnapshot>(c.incoming->substr(5));
        source = snapshot->source();
      } else if (c.incoming) {
        // Listening before the VM exists, so a source can connect at once
        // and a bad address fails the start.
        incoming_ = true;
        migration_listener = migration::Listen(*c.incoming);
      }
      machine_ = std::make_unique<Machine>(
          ToMachineConfig(c), [this](const ExitReason& r) { mailbox_.Post(r); },
          [this](const std::string& name, Json data) {
            events_.Post(Json(Json::Object{{"event", Json("qmp")}, {"name", Json(name)}, {"data", std::move(data)}}).Dump());
          },
          snapshot ? &source : nullptr, incoming_);
      if (snapshot) log_.Log("restored from " + *c.incoming);
    } catch (const std::exception& e) {
      return Finish(1, e.what());
    }
    std::string pty = machine_->pty_path();
    if (!pty.empty() && !daemon_.active()) {
      std::fprintf(stderr, "char device redirected to %s (label serial0)\n", pty.c_str());
    }
    try {
      if (c.pidfile) {
        WritePidfile(*c.pidfile);
        pidfile_written_ = true;
      }
      if (c.qmp) qmp_listener_ = ListenForQmp(*c.qmp);
      machine_->Start(c.start_paused || incoming_);
      prelaunch_ = c.start_paused;
      if (incoming_) {
        log_.Log("waiting for an incoming migration on " + *c.incoming);
        destination_ = std::make_unique<migration::Destination>(
            *machine_, std::move(migration_listener), [this](const std::string& status, const std::string& error) {
              events_.Post(Json(Json::Object{{"event", Json("migration-in")}, {"status", Json(status)}, {"error", Json(error)}}).Dump());
            });
      }
    } catch (const std::exception& e) {
      return Finish(1, e.what());
    }
    log_.Log(std::string(c.start_paused ? "vCPUs created, paused (prelaunch)" : "vCPUs running"));
    // The QMP socket already listens; its control plane starts with the
    // first client (Loop), so a VM nobody manages costs no Node process.
    daemon_.Ready(pty);
    return Loop();
  }

 private:
  int Loop() {
    for (;;) {
      std::vector<pollfd> fds = {{mailbox_.fd(), POLLIN, 0}, {signal_fd_.get(), POLLIN, 0}, {events_.fd(), POLLIN, 0}};
      size_t channel = 0, first_client = 0;
      if (control_.active()) {
        channel = fds.size();
        fds.push_back({control_.fd(), POLLIN, 0});
      } else if (qmp_listener_.valid() && !control_started_) {
        first_client = fds.size();
        fds.push_back({qmp_listener_.get(), POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), NextTimerMs()) < 0) {
        if (errno == EINTR) continue;
        return Finish(1, std::string("poll: ") + std::strerror(errno));
      }
      if (fds[0].revents) {
        std::optional<ExitReason> reason = mailbox_.Take();
        if (reason) return OnMachineExit(*reason);
      }
      if (fds[2].revents) {
        for (const std::string& line : events_.Take()) {
          if (std::optional<int> done = OnEvent(line)) return *done;
        }
      }
      if (fds[1].revents) {
        signalfd_siginfo info{};
        while (::read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
          if (info.ssi_signo == SIGCHLD) {
            int status = 0;
            if (control_.Reap(&status)) {
              if (std::optional<int> done = OnControlPlaneGone(0, status)) return *done;
            }
            continue;
          }
          log_.Log(std::string("received SIG") + ::sigabbrev_np(static_cast<int>(info.ssi_signo)));
          control_.Send(R"({"event":"shutdown","guest":false,"reason":"host-signal"})");
          return Finish(0);
        }
      }
      if (first_client != 0 && fds[first_client].revents) {
        // The client waits in the listen backlog; the control plane accepts
        // and greets it once it has the VM (~0.1 s for a companion).
        control_started_ = true;
        try {
          StartControlPlane();
        } catch (const std::exception& e) {
          return Finish(1, std::string("QMP: ") + e.what());
        }
      }
      if (channel != 0 && control_.active() && fds[channel].revents) {
        std::optional<int> done;
        bool open = control_.ReadLines([&](const std::string& line) {
          if (!done) done = OnControlLine(line);
        });
        if (done) return *done;
        if (!open) {
          if (std::optional<int> done = OnControlPlaneGone(2000)) return *done;
        }
      }
      if (std::optional<int> done = RunTimers()) return *done;
    }
  }

  static int64_t NowMs() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
  }

  // poll's timeout: until the next host retry or probe, or none.
  int NextTimerMs() const {
    int64_t next = -1;
    if (host_retry_until_ != 0) next = next_host_try_;
    else if (control_.active() && !control_.hosted() && !host_path_.empty()) next = next_host_probe_;
    if (migrated_exit_at_ != 0 && (next < 0 || migrated_exit_at_ < next)) next = migrated_exit_at_;
    if (next < 0) return -1;
    return static_cast<int>(std::max<int64_t>(0, next - NowMs()));
  }

  std::optional<int> RunTimers() {
    int64_t now = NowMs();
    if (migrated_exit_at_ != 0 && now >= migrated_exit_at_) {
      log_.Log("shutdown: the guest migrated");
      control_.Send(R"({"event":"shutdown","guest":false,"reason":"migration"})");
      return Finish(0);
    }
    if (host_retry_until_ != 0 && now >= next_host_try_) {
      // The host went away: it is given a moment to come back (virgad
      // restarts it) before this VM starts a companion of its own.
      try {
        control_ = ControlPlane::Hosted(ControlPlane::ConnectToHost(host_path_), Hello(), qmp_listener_.get());
        host_retry_until_ = 0;
        log_.Log("control plane: back on the control-plane host " + host_path_);
      } catch (const std::exception& e) {
        if (now < host_retry_until_) {
          next_host_try_ = now + kHostRetryIntervalMs;
          return std::nullopt;
        }
        host_retry_until_ = 0;
        log_.Log(std::string("control-plane host: ") + e.what() + "; starting a control plane of its own");
        try {
          StartCompanion();
        } catch (const std::exception& spawn_error) {
          return Finish(1, std::string("QMP: ") + spawn_error.what());
        }
      }
    } else if (control_.active() && !control_.hosted() && !host_path_.empty() && now >= next_host_probe_) {
      next_host_probe_ = now + kHostProbeIntervalMs;
      UniqueFd connection;
      try {
        connection = ControlPlane::ConnectToHost(host_path_);
      } catch (const std::exception&) {
        return std::nullopt;  // still away: the companion keeps serving
      }
      return MoveToHost(std::move(connection));
    }
    return std::nullopt;
  }

  // The host is back while a companion serves this VM: the companion lets go
  // (its QMP clients reconnect, as after any control-plane restart) and the
  // host takes over, so a VM costs a companion only while the host is away.
  std::optional<int> MoveToHost(UniqueFd connection) {
    control_.Send(R"({"event":"detach"})");
    control_.WaitForEnd(3000);
    try {
      control_ = ControlPlane::Hosted(std::move(connection), Hello(), qmp_listener_.get());
      log_.Log("control plane: moved to the control-plane host " + host_path_);
    } catch (const std::exception& e) {
      log_.Log(std::string("control-plane host: ") + e.what() + "; staying on a control plane of its own");
      try {
        StartCompanion();
      } catch (const std::exception& spawn_error) {
        return Finish(1, std::string("QMP: ") + spawn_error.what());
      }
    }
    return std::nullopt;
  }

  // The run state goes along, so a restarted control plane carries on
  // where the last one stopped.
  std::string Hello() const {
    std::string pty = machine_->pty_path();
    const char* status = incoming_                           ? "inmigrate"
                         : prelaunch_ && machine_->paused() ? "prelaunch"
                         : machine_->paused()               ? "paused"
                                                            : "running";
    return "{\"config\":" + cli::ToJson(config_) + ",\"ptyPath\":" + (pty.empty() ? "null" : JsonQuote(pty)) +
           ",\"status\":\"" + status + "\",\"pid\":" + std::to_string(::getpid()) + "}";
  }

  // The control-plane host when there is one and it answers, else a companion.
  void StartControlPlane() {
    if (!host_path_.empty()) {
      try {
        control_ = ControlPlane::Hosted(ControlPlane::ConnectToHost(host_path_), Hello(), qmp_listener_.get());
        log_.Log("control plane: on the control-plane host " + host_path_);
        return;
      } catch (const std::exception& e) {
        log_.Log(std::string("control-plane host: ") + e.what() + "; starting a control plane of its own");
      }
    }
    StartCompanion();
  }

  void StartCompanion() {
    control_ = ControlPlane::Spawn(Hello(), qmp_listener_.get());
    next_host_probe_ = NowMs() + kHostProbeIntervalMs;
  }

  // The control plane let go of the VM while the VM goes on. A host that
  // closed the channel has gone (or restarts): that is not this VM's fault,
  // so it is retried for a moment and does not count as a restart. A
  // companion that died, or this VM's part failing inside the host, is
  // started again on the same listening socket: the guest is not the one to
  // pay for it. Only a control plane that keeps failing ends the VM.
  std::optional<int> OnControlPlaneGone(int wait_ms, int status = -1) {
    bool was_hosted = control_.hosted();
    int waited = control_.WaitForEnd(wait_ms);
    if (status == -1) status = waited;
    std::string failure = std::exchange(host_failure_, "");
    if (was_hosted && failure.empty()) {
      log_.Log("control plane: the control-plane host closed the channel; retrying it");
      host_retry_until_ = NowMs() + kHostRetryMs;
      next_host_try_ = NowMs() + kHostRetryIntervalMs;
      return std::nullopt;
    }
    std::string why = was_hosted ? "the control plane failed in the control-plane host (" + failure + ")"
                                 : "the control plane exited unexpectedly (" + Describe(status) + ")";
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - restart_window_start_ > 60) {
      restart_window_start_ = now.tv_sec;
      restarts_ = 0;
    }
    if (++restarts_ > 3) return Finish(1, why + ", 3 restarts in a minute");
    log_.Log(why + "; starting it again");
    try {
      StartControlPlane();
    } catch (const std::exception& e) {
      return Finish(1, why + "; restart failed: " + e.what());
    }
    return std::nullopt;
  }

  static std::string Describe(int status) {
    if (status < 0) return "unknown status";
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + ::sigabbrev_np(WTERMSIG(status));
    return "status " + std::to_string(status);
  }

  // An event from a VMM thread: device events go to the control plane;
  // migration's also change what this process does.
  std::optional<int> OnEvent(const std::string& line) {
    Json event = Json::Parse(line);
    const std::string& kind = event.Find("event")->as_string();
    if (kind == "migration-in") {
      const std::string& status = event.Find("status")->as_string();
      const std::string& error = event.Find("error")->as_string();
      if (status == "failed") {
        control_.Send(Json(Json::Object{{"event", Json("error")}, {"message", Json("incoming migration: " + error)}}).Dump());
        return Finish(1, "incoming migration failed: " + error);
      }
      bool resumed = false;
      if (status == "completed") {
        incoming_ = false;
        log_.Log("incoming migration completed");
        if (!config_.start_paused) {
          machine_->Resume();
          resumed = true;
        }
      }
      control_.Send(Json(Json::Object{{"event", Json("migration")},
                                      {"status", Json(status)},
                                      {"incoming", Json(true)},
                                      {"resumed", Json(resumed)}})
                        .Dump());
      return std::nullopt;
    }
    if (kind == "migration") {
      const std::string& status = event.Find("status")->as_string();
      log_.Log("migration: " + status + (event.Find("error")->as_string().empty() ? "" : " (" + event.Find("error")->as_string() + ")"));
      // The source lingers a moment, so clients polling query-migrate see
      // "completed" before the process goes.
      if (status == "completed") migrated_exit_at_ = NowMs() + kMigratedExitDelayMs;
    }
    // Nobody to tell without a control plane: no QMP client is connected.
    control_.Send(line);
    return std::nullopt;
  }

  // The source of a live migration, started by the control plane's "migrate".
  Json StartMigration(const Json& args) {
    if (incoming_) throw VmmError("this VM is waiting for an incoming migration");
    machine_->RequireSavable();
    if (source_ && !source_->finished()) throw VmmError("a migration is already in progress");
    const Json* uri = args.Find("uri");
    if (uri == nullptr || !uri->is_string()) throw VmmError("control request: 'uri' must be a string");
    migration::Parameters parameters;
    if (const Json* v = args.Find("downtimeLimitMs"); v && v->is_number()) {
      parameters.downtime_limit_ms = static_cast<uint64_t>(v->as_number());
    }
    if (const Json* v = args.Find("maxBandwidth"); v && v->is_number()) {
      parameters.max_bandwidth = static_cast<uint64_t>(v->as_number());
    }
    source_.reset();
    source_ = std::make_unique<migration::Source>(
        *machine_, uri->as_string(), parameters, kVersion, [this](const std::string& status, const std::string& error) {
          events_.Post(Json(Json::Object{{"event", Json("migration")}, {"status", Json(status)}, {"error", Json(error)}}).Dump());
        });
    return Json();
  }

  int OnMachineExit(const ExitReason& reason) {
    if (reason.kind == ExitKind::kError) {
      control_.Send("{\"event\":\"error\",\"message\":" + JsonQuote(reason.message) + "}");
      return Finish(1, reason.message);
    }
    const char* why = reason.kind == ExitKind::kGuestReset ? "guest-reset" : "guest-shutdown";
    log_.Log(std::string("shutdown: ") + why + (reason.message.empty() ? "" : " (" + reason.message + ")"));
    if (reason.crash) std::fprintf(stderr, "virga-vmm: %s; a reset ends the VM\n", reason.message.c_str());
    control_.Send(std::string(R"({"event":"shutdown","guest":true,"reason":")") + why + "\"}");
    return Finish(0);
  }

  // Requests from the control plane; returns an exit code once the process should end.
  std::optional<int> OnControlLine(const std::string& line) {
    Json message;
    try {
      message = Json::Parse(line);
    } catch (const JsonError& e) {
      return Finish(1, std::string("control plane: ") + e.what());
    }
    if (const Json* notice = message.Find("notice")) {
      const Json* why = message.Find("message");
      if (notice->is_string() && notice->as_string() == "quit") {
        log_.Log("shutdown: host-qmp-quit");
        return Finish(0);
      }
      if (notice->is_string() && notice->as_string() == "restart") {
        // The host closes the channel next; OnControlPlaneGone counts it.
        host_failure_ = why && why->is_string() ? why->as_string() : std::string("no reason given");
        return std::nullopt;
      }
      return Finish(1, "QMP: " + (why && why->is_string() ? why->as_string() : std::string("control plane failed")));
    }
    const Json* id = message.Find("id");
    const Json* op = message.Find("op");
    if (id == nullptr || !id->is_number() || op == nullptr || !op->is_string()) {
      return Finish(1, "control plane: a request without id or op: " + line.substr(0, 200));
    }
    std::vector<UniqueFd> fds;
    if (const Json* count = message.Find("fds"); count && count->is_number()) {
      for (int i = 0; i < static_cast<int>(count->as_number()); ++i) fds.push_back(control_.TakeFd());
    }
    const Json* args = message.Find("args");
    try {
      const std::string& name = op->as_string();
      Json result;
      if (name == "migrate") {
        result = StartMigration(args ? *args : Json(Json::Object{}));
      } else if (name == "migrate-cancel") {
        if (source_) source_->Cancel();
      } else if (name == "migrate-info") {
        result = source_ ? source_->Info() : Json(Json::Object{{"status", Json("none")}});
      } else {
        result = RunControlRequest(*machine_, op->as_string(), args ? *args : Json(Json::Object{}), std::move(fds),
                                   {kProcessStartNs, kVersion});
      }
      if (name == "resume") prelaunch_ = false;
      control_.Send("{\"id\":" + id->Dump() + ",\"result\":" + result.Dump() + "}");
    } catch (const QmpError& e) {
      control_.Send(Json(Json::Object{{"id", *id}, {"error", Json(e.what())}, {"class", Json(e.qmp_class())}}).Dump());
    } catch (const std::exception& e) {
      control_.Send(Json(Json::Object{{"id", *id}, {"error", Json(e.what())}}).Dump());
    }
    return std::nullopt;
  }

  // Tears everything down once: the guest stops first, then the control plane
  // gets to tell its clients (the event was sent before this) and go.
  int Finish(int code, const std::string& error = "") {
    if (!error.empty()) {
      std::fprintf(stderr, "virga-vmm: error: %s\n", error.c_str());
      log_.Log("error: " + error);
      daemon_.Fail(error);
    }
    // The migration threads use the machine: they stop first.
    source_.reset();
    destination_.reset();
    if (machine_) {
      machine_->Destroy();
      for (const VcpuSummary& v : machine_->Vcpus()) log_.Log(RunStatsLogLine(v, kProcessStartNs));
    }
    control_.WaitForEnd(3000);
    // The socket file is this process's to remove: a control plane leaves
    // it, since the VM may outlive its control plane.
    if (qmp_listener_.valid() && config_.qmp->kind == cli::Qmp::Kind::kUnix) ::unlink(config_.qmp->path.c_str());
    if (pidfile_written_) RemovePidfile(*config_.pidfile);
    log_.Log("exit " + std::to_string(code));
    return code;
  }

  cli::VmmConfig config_;
  DaemonReport& daemon_;
  VmmLog log_;
  ExitMailbox mailbox_;
  EventMailbox events_;
  UniqueFd signal_fd_;
  std::unique_ptr<Machine> machine_;
  std::unique_ptr<migration::Source> source_;
  std::unique_ptr<migration::Destination> destination_;
  bool incoming_ = false;          // -incoming tcp:/unix:, until the state is in
  int64_t migrated_exit_at_ = 0;   // the source ends a moment after completing
  UniqueFd qmp_listener_;
  ControlPlane control_;
  bool control_started_ = false;
  // The control-plane host's socket ($VIRGA_CONTROL_HOST), empty without one.
  std::string host_path_;
  // Set while the host is retried after it closed the channel (monotonic ms).
  int64_t host_retry_until_ = 0;
  int64_t next_host_try_ = 0;
  // When a companion serves the VM: the next look for the host.
  int64_t next_host_probe_ = 0;
  // Why this VM's part failed in the host (its "restart" notice).
  std::string host_failure_;
  bool prelaunch_ = false;  // -S and no QMP cont yet
  int restarts_ = 0;
  time_t restart_window_start_ = 0;
  bool pidfile_written_ = false;
};

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  cli::Invocation invocation;
  try {
    invocation = cli::ParseCommandLine(args);
    if (invocation.action == cli::Invocation::Action::kRun) cli::ValidateFiles(invocation.config);
  } catch (const cli::UsageError& e) {
    std::fprintf(stderr, "virga-vmm: %s\n", e.what());
    return 2;
  }
  switch (invocation.action) {
    case cli::Invocation::Action::kHelp:
      std::printf("%s\n", cli::Usage().c_str());
      return 0;
    case cli::Invocation::Action::kVersion:
      std::printf("virga-vmm %s\n", kVersion);
      return 0;
    case cli::Invocation::Action::kPrintConfig:
      std::printf("%s\n", cli::ToJson(invocation.config).c_str());
      return 0;
    case cli::Invocation::Action::kRun:
      break;
  }
  DaemonReport daemon;
  try {
    if (invocation.config.daemonize) daemon = Daemonize(invocation.config.log_file);
    return VmProcess(invocation.config, daemon).Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "virga-vmm: error: %s\n", e.what());
    daemon.Fail(e.what());
    return 1;
  }
}

}  // namespace
}  // namespace virga

int main(int argc, char** argv) { return virga::Main(argc, argv); }
