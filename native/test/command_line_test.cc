#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "cli/config_json.h"
#include "cli/flags.h"
#include "cli/usage_error.h"
#include "unit_test.h"

namespace virga::cli {
namespace {

constexpr uint64_t MiB = kMiB;

// Runs fn, which must throw a UsageError whose text matches pattern.
template <typename Fn>
void ExpectUsageError(Fn fn, const std::string& pattern) {
  try {
    fn();
  } catch (const UsageError& e) {
    if (!std::regex_search(e.what(), std::regex(pattern))) {
      throw test::Failure("message '" + std::string(e.what()) + "' does not match /" + pattern + "/");
    }
    return;
  }
  throw test::Failure("no UsageError; wanted /" + pattern + "/");
}

std::string Topology(const Smp& s) {
  return std::to_string(s.cpus) + "/" + std::to_string(s.max_cpus) + "/" + std::to_string(s.sockets) + "/" +
         std::to_string(s.cores) + "/" + std::to_string(s.threads);
}

void ExpectSame(const std::string& got, const std::string& want) {
  if (got != want) throw test::Failure("got '" + got + "', want '" + want + "'");
}

VmmConfig Parse(const std::vector<std::string>& argv) { return ParseCommandLine(argv).config; }

// One registered test per table row, so each case passes or fails on its own.
bool Cases(const std::vector<std::pair<std::string, std::function<void()>>>& cases) {
  for (const auto& [name, body] : cases) test::Registry().push_back({name, body});
  return true;
}

// One test per bad argument: parse must throw a UsageError naming the flag
// whose text matches the row's message.
bool Rejects(const std::string& flag, const std::function<void(const std::string&)>& parse,
             const std::vector<std::pair<std::string, std::string>>& rows) {
  std::vector<std::pair<std::string, std::function<void()>>> cases;
  for (const auto& [text, message] : rows) {
    cases.push_back({flag + ": rejects '" + text.substr(0, 60) + "'",
                     [=, text = text, message = message] { ExpectUsageError([&] { parse(text); }, "^" + flag + ": .*" + message); }});
  }
  return Cases(cases);
}

const bool kSmpGood = [] {
  std::vector<std::pair<std::string, std::string>> good = {
      {"1", "1/1/1/1/1"},
      {"4", "4/4/4/1/1"},
      {"cpus=2", "2/2/2/1/1"},
      {"2,maxcpus=4", "2/4/4/1/1"},
      {"4,sockets=2,cores=2", "4/4/2/2/1"},
      {"4,sockets=2", "4/4/2/2/1"},
      {"8,sockets=2,cores=2,threads=2", "8/8/2/2/2"},
      {"cpus=1,maxcpus=8,sockets=2,cores=2,threads=2", "1/8/2/2/2"},
      {"maxcpus=2", "2/2/2/1/1"},
      {"254", "254/254/254/1/1"},
      {"2,cores=2", "2/2/1/2/1"},
      {"254,sockets=2,cores=127", "254/254/2/127/1"},  // APIC ids up to 254 exactly
  };
  std::vector<std::pair<std::string, std::function<void()>>> cases;
  for (const auto& [text, want] : good) {
    cases.push_back({"-smp: '" + text + "' is cpus/maxcpus/sockets/cores/threads " + want,
                     [text = text, want = want] { ExpectSame(Topology(ParseSmp(text)), want); }});
  }
  return Cases(cases);
}();

// -smp errors also show the expected form and what was given.
const bool kSmpBad = [] {
  std::vector<std::pair<std::string, std::string>> bad = {
      {"x", "cpus is not a number"},
      {"", "cpus is not a number"},
      {"0", "must be 1\\.\\.254"},
      {"255", "must be 1\\.\\.254"},
      {"4,maxcpus=2", "cpus \\(4\\) exceeds maxcpus \\(2\\)"},
      {"4,sockets=3", "sockets\\*cores\\*threads \\(3\\*1\\*1=3\\) must equal maxcpus \\(4\\)"},
      {"4,sockets=2,cores=2,threads=2", "must equal maxcpus"},
      {"4,foo=1", "unknown option 'foo'"},
      {"4,cpus=4", "'cpus' given twice"},
      {"4,2", "'2' needs a key"},
      {"-1", "not a number"},
      // 195 CPUs, but the third socket's ids start at 2 << 7.
      {"195,sockets=3,cores=65", "sockets=3,cores=65,threads=1 needs APIC ids up to 320, beyond 254 \\(8-bit ids\\)"},
  };
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& [text, message] : bad) {
    rows.push_back({text, message + ".*expected \\[cpus=\\]n\\[,maxcpus=n\\].*, got '" + text + "'$"});
  }
  return Rejects("-smp", [](const std::string& t) { ParseSmp(t); }, rows);
}();

const bool kMemoryGood = [] {
  std::vector<std::pair<std::string, uint64_t>> good = {
      {"1024", 1024 * MiB}, {"16", 16 * MiB},          {"512M", 512 * MiB}, {"512m", 512 * MiB},
      {"1G", 1024 * MiB},   {"2g", 2048 * MiB},        {"131072K", 128 * MiB}, {"size=256M", 256 * MiB},
      {"256G", 256 * 1024 * MiB}, {"1GiB", 1024 * MiB},
  };
  std::vector<std::pair<std::string, std::function<void()>>> cases;
  for (const auto& [text, want] : good) {
    cases.push_back({"-m: '" + text + "' is " + std::to_string(want / MiB) + " MiB",
                     [text = text, want = want] { EXPECT_EQ(ParseMemory(text), want); }});
  }
  return Cases(cases);
}();

const bool kMemoryBad = Rejects("-m", [](const std::string& t) { ParseMemory(t); },
                                {
                                    {"15", "less than 16 MiB"},
                                    {"0", "less than 16 MiB"},
                                    {"257G", "more than 256 GiB"},
                                    {"1T", "more than 256 GiB"},
                                    {"16385K", "not a whole number of MiB"},
                                    {"abc", "not a size"},
                                    {"1.5G", "not a size"},
                                    {"-1", "not a size"},
                                    {"1X", "not a size"},
                                });

TEST("-drive: file and id required, on/off switches, ,, escapes a comma") {
  Drive d = ParseDrive("file=a,,b.img,id=d,readonly=on,direct=yes,if=none,format=raw");
  ExpectSame(d.file, "a,b.img");
  ExpectSame(d.id, "d");
  EXPECT_TRUE(d.read_only && d.direct);
}

const bool kDriveBad = Rejects("-drive", [](const std::string& t) { ParseDrive(t); },
                               {
                                   {"id=d0", "missing file="},
                                   {"file=/a.img", "missing id="},
                                   {"file=/a.img,id=d0,readonly=maybe", "readonly must be on or off"},
                                   {"file=/a.img,id=d0,direct=2", "direct must be on or off"},
                                   {"file=/a.img,id=d0,format=qcow2", "format=qcow2 is not supported"},
                                   {"file=/a.img,id=d0,if=virtio", "if=virtio is not supported"},
                                   {"file=/a.img,id=d0,cache=none", "unknown option 'cache'"},
                                   {"file=/a.img,id=d0,id=d1", "'id' given twice"},
                                   {"/a.img", "needs a key"},
                                   {"file=,id=d0", "file= is empty"},
                               });

TEST("-device: virtio-blk-device with drive=, id= defaulting to the drive") {
  Device d = ParseDevice("driver=virtio-blk-device,id=v,drive=d");
  ExpectSame(d.id + "/" + d.backend, "v/d");
  ExpectSame(ParseDevice("virtio-blk-device,drive=d0").id, "d0");
}

TEST("-device: virtio-net-device with netdev= and mac=, virtio-balloon-device with its switches") {
  Device n = ParseDevice("virtio-net-device,netdev=n0,id=net0,mac=52:54:00:AB:cd:01");
  EXPECT_TRUE(n.kind == Device::Kind::kNet);
  ExpectSame(n.id + "/" + n.backend + "/" + n.mac.value_or(""), "net0/n0/52:54:00:AB:cd:01");
  ExpectSame(ParseDevice("virtio-net-device,netdev=n1").id, "n1");
  Device b = ParseDevice("virtio-balloon-device,deflate-on-oom=true,free-page-reporting=on");
  EXPECT_TRUE(b.kind == Device::Kind::kBalloon && b.deflate_on_oom && b.free_page_reporting);
  ExpectSame(b.id, "balloon0");
}

TEST("-netdev: a tap by name or by inherited fd") {
  Netdev a = ParseNetdev("tap,id=n0,ifname=tap0");
  ExpectSame(a.id + "/" + a.ifname, "n0/tap0");
  EXPECT_TRUE(!a.fd);
  Netdev b = ParseNetdev("tap,id=n1,fd=7,vhost=off");
  EXPECT_TRUE(b.fd && *b.fd == 7 && b.ifname.empty());
}

const bool kNetdevBad = Rejects("-netdev", [](const std::string& t) { ParseNetdev(t); },
                                {
                                    {"user,id=n0", "backend 'user' is not supported \\(only tap\\)"},
                                    {"tap,ifname=tap0", "missing id="},
                                    {"tap,id=n0", "give exactly one of ifname= and fd="},
                                    {"tap,id=n0,ifname=tap0,fd=5", "give exactly one of ifname= and fd="},
                                    {"tap,id=n0,ifname=a/b", "ifname must be an interface name"},
                                    {"tap,id=n0,ifname=0123456789abcdef", "ifname must be an interface name"},
                                    {"tap,id=n0,fd=x", "fd must be a file descriptor number"},
                                    {"tap,id=n0,fd=1", "fd must be 3 or more"},
                                    {"tap,id=n0,ifname=tap0,vhost=on", "vhost=on is not supported"},
                                    {"tap,id=n0,ifname=tap0,script=no", "unknown option 'script'"},
                                });

const bool kDeviceBad =
    Rejects("-device", [](const std::string& t) { ParseDevice(t); },
            {
                {"virtio-net-device", "missing netdev="},
                {"virtio-net-device,netdev=n0,mac=01:00:5e:00:00:01", "mac must be a unicast MAC address"},
                {"virtio-net-device,netdev=n0,mac=52:54:00:12:34", "mac must be a unicast MAC address"},
                {"virtio-net-device,netdev=n0,drive=d", "unknown option 'drive'"},
                {"virtio-balloon-device,deflate-on-oom=maybe", "deflate-on-oom must be on or off"},
                {"virtio-balloon-device,drive=d", "unknown option 'drive'"},
                {"virtio-balloon-device,addr=1", "unknown option 'addr'"},
                {"virtio-blk-device,drive=d,addr=vdb", "addr must be a slot number"},
                {"pcie-root-port,id=rp1,bus=pcie.0,addr=0x1", "missing port="},
                {"pcie-root-port,port=1,bus=pcie.0,addr=0x1", "missing id= \\(the root port's bus name\\)"},
                {"pcie-root-port,id=rp1,port=1,addr=0x1", "missing bus="},
                {"pcie-root-port,id=rp1,port=0x100,bus=pcie.0,addr=0x1", "port must be a number from 0 to 255"},
                {"pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=0x1,chassis=x", "chassis must be a number"},
                {"pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=0x1,multifunction=maybe", "multifunction must be on or off"},
                {"pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=0x1,drive=d", "unknown option 'drive'"},
                {"vfio-pci,bus=pcie.0,addr=0x3", "vfio-pci takes exactly one of host= and sysfsdev="},
                {"virtio-blk-pci,drive=d,addr=0x3", "missing bus="},
                {"virtio-blk-pci,drive=d,bus=pcie.0", "missing addr="},
                {"virtio-blk-pci,drive=d,bus=pcie.0,addr=0x20", "addr 0x20.0 is out of range \\(slots 0x0-0x1f"},
                {"virtio-blk-pci,drive=d,bus=pcie.0,addr=0x3.8", "addr 0x3.8 is out of range"},
                {"virtio-blk-pci,drive=d,bus=pcie.0,addr=slot3", "addr must be <slot>\\[.<function>\\] in hex"},
                {"virtio-net-pci,netdev=n,bus=pcie.0,addr=0x3,drive=d", "unknown option 'drive'"},
                {"e1000,drive=d", "unknown device 'e1000'"},
                {"virtio-blk-device", "missing drive="},
                {"virtio-blk-device,drive=d,serial=x", "unknown option 'serial'"},
                {"virtio-blk-device,drive=d,drive=e", "'drive' given twice"},
            });

TEST("-serial: backends and QEMU's short forms") {
  EXPECT_TRUE(ParseSerial("file:/tmp/c.log").kind == Serial::Kind::kFile);
  ExpectSame(ParseSerial("socket,path=/tmp/a,,b,server,nowait").path, "/tmp/a,b");
  ExpectSame(ParseSerial("unix:/tmp/s.sock,server,nowait").path, "/tmp/s.sock");
}

const bool kSerialBad = Rejects("-serial", [](const std::string& t) { ParseSerial(t); },
                                {
                                    {"vc", "unknown backend 'vc'"},
                                    {"socket,path=/tmp/s", "must be server,nowait"},
                                    {"file", "path"},
                                    {"stdio,path=/x", "stdio takes no options"},
                                    {"file,path=/x,server", "file takes only path="},
                                    {"pty,signal=off", "unknown option 'signal'"},
                                });

TEST("-qmp: unix and tcp (with [v6]) addresses, rate-limit") {
  Qmp tcp = ParseQmp("tcp:[::1]:4444,server,nowait");
  ExpectSame(tcp.host + ":" + std::to_string(tcp.port), "::1:4444");
  EXPECT_EQ(ParseQmp("unix:/s,server,nowait,rate-limit=0").rate_limit, 0u);
  EXPECT_EQ(ParseQmp("unix:rel.sock,nowait,server").rate_limit, kDefaultQmpRateLimit);
}

const bool kQmpBad = Rejects("-qmp", [](const std::string& t) { ParseQmp(t); },
                             {
                                 {"unix:/s", "must be server,nowait"},
                                 {"/s,server,nowait", "must start with unix: or tcp:"},
                                 {"tcp:localhost,server,nowait", "tcp needs <host>:<port>"},
                                 {"tcp:127.0.0.1:70000,server,nowait", "port"},
                                 {"unix:,server,nowait", "path"},
                                 {"unix:/s,server,nowait,wait=off", "unknown option 'wait'"},
                                 {"unix:/s,server,nowait,rate-limit=x", "unknown option 'rate-limit'"},
                             });

TEST("command line: the seed's microvm command and its defaults") {
  VmmConfig c = Parse({"-machine", "microvm", "-smp", "2", "-m", "1024", "-kernel", "/vmlinux.bin", "-append",
                       "console=ttyS0 reboot=k panic=1 root=/dev/vda rw", "-drive",
                       "file=/rootfs,id=rootfs,readonly=off,direct=off", "-device",
                       "virtio-blk-device,drive=rootfs,id=rootfs", "-qmp", "unix:/tmp/stratovirt.socket,server,nowait",
                       "-serial", "stdio"});
  EXPECT_EQ(c.smp.cpus, 2u);
  EXPECT_EQ(c.memory_bytes, 1024 * MiB);
  EXPECT_EQ(c.devices.size(), 1u);
  EXPECT_TRUE(c.qmp && c.qmp->path == "/tmp/stratovirt.socket");
  VmmConfig d = Parse({"-kernel", "k"});
  EXPECT_EQ(d.memory_bytes, 256 * MiB);
  EXPECT_TRUE(d.serial.kind == Serial::Kind::kStdio && !d.qmp && !d.log_file);
  EXPECT_TRUE(Parse({"-kernel", "k", "-daemonize", "-D", "/l"}).serial.kind == Serial::Kind::kNone);
  VmmConfig dash = Parse({"--kernel", "k", "-D"});
  EXPECT_TRUE(dash.log_file && dash.log_file->empty());
  ExpectSame(Parse({"-kernel", "k", "-name", "guest=vm2"}).name.value_or(""), "vm2");
  ExpectSame(d.machine, "microvm");
  ExpectSame(Parse({"-machine", "type=q35", "-kernel", "k"}).machine, "q35");
}

TEST("command line: virtio-pci devices on q35 take bus and addr, slot and function in hex") {
  VmmConfig c = Parse({"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-netdev", "tap,id=n,ifname=t",
                       "-device", "virtio-blk-pci,drive=a,id=disk0,bus=pcie.0,addr=0x1f", "-device",
                       "virtio-net-pci,netdev=n,bus=pcie.0,addr=4,mac=52:54:00:00:00:01", "-device",
                       "virtio-balloon-pci,id=b,bus=pcie.0,addr=0x4.0x7"});
  EXPECT_TRUE(c.devices[0].pci && c.devices[0].pci_addr.slot == 31 && c.devices[0].pci_addr.function == 0);
  ExpectSame(c.devices[1].id, "n");
  EXPECT_TRUE(c.devices[2].pci_addr.slot == 4 && c.devices[2].pci_addr.function == 7);
  ExpectSame(FormatDevice(c.devices[0]), "virtio-blk-pci,drive=a,id=disk0,bus=pcie.0,addr=0x1f.0");
}

TEST("command line: root ports take StratoVirt's keys, and a virtio-pci device sits in one's slot") {
  VmmConfig c = Parse({"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device",
                       "virtio-blk-pci,drive=a,id=disk0,bus=rp1,addr=0x0", "-device",
                       "pcie-root-port,id=rp1,port=0x1,bus=pcie.0,addr=0x2,multifunction=on,chassis=1", "-device",
                       "pcie-root-port,id=rp2,port=2,bus=pcie.0,addr=0x2.0x1"});
  EXPECT_TRUE(c.devices[1].kind == Device::Kind::kRootPort && c.devices[1].port == 1 && c.devices[1].multifunction);
  EXPECT_TRUE(c.devices[1].chassis == 1u);
  EXPECT_TRUE(c.devices[2].pci_addr.slot == 2 && c.devices[2].pci_addr.function == 1 && !c.devices[2].chassis);
  ExpectSame(FormatDevice(c.devices[0]), "virtio-blk-pci,drive=a,id=disk0,bus=rp1,addr=0x0.0");
  ExpectSame(FormatDevice(c.devices[1]), "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=0x2.0,multifunction=on,chassis=1");
}

TEST("command line: -device order is slot order, whatever the -drive order") {
  VmmConfig c = Parse({"-kernel", "k", "-drive", "file=/a,id=a", "-drive", "file=/b,id=b", "-device",
                       "virtio-blk-device,drive=b", "-device", "virtio-blk-device,drive=a"});
  ExpectSame(c.devices[0].backend + c.devices[1].backend, "ba");
}

const bool kCommandLineBad = [] {
  std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{}, "^-kernel: required; expected <path"},
      {{"-kernel", "k", "-vnc", ":1"}, "^-vnc: unknown flag; expected one of -machine"},
      {{"-kernel"}, "^-kernel: missing value"},
      {{"-kernel", "k", "-m", "1G", "-m", "2G"}, "^-m: given more than once"},
      {{"-kernel", "k", "-daemonize", "-serial", "stdio"}, "^-daemonize: cannot be used with -serial stdio"},
      {{"-kernel", "k", "-daemonize", "-D"}, "^-D: a daemon has no stderr"},
      {{"-kernel", "k", "-device", "virtio-blk-device,drive=nope"}, "^-device: unknown drive 'nope'"},
      {{"-kernel", "k", "-drive", "file=/a,id=a", "-device", "virtio-blk-device,drive=a,id=x", "-device",
        "virtio-blk-device,drive=a,id=y"},
       "^-device: drive 'a' already used"},
      {{"-kernel", "k", "-drive", "file=/a,id=a", "-drive", "file=/b,id=a"}, "^-drive: duplicate id 'a'"},
      {{"-kernel", "k", "-drive", "file=/a,id=a"}, "^-drive: drive 'a' is not attached"},
      {{"-kernel", "k", "-append", std::string(2049, 'x')}, "^-append: longer than 2048 bytes"},
      {{"-kernel", ""}, "^-kernel: empty path; expected <path"},
      {{"-kernel", "k", "-name", ""}, "^-name: empty name"},
      {{"-kernel", "k", "-S", "x"}, "^x: unexpected argument 'x'"},
      {{"-machine", "pc", "-kernel", "k"}, "^-machine: machine 'pc' is not supported yet"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device", "virtio-blk-device,drive=a"},
       "^-device: virtio-blk-device is a microvm \\(virtio-mmio\\) device; the q35 machine takes "
       "virtio-blk-pci,bus=pcie.0,addr=<slot>"},
      {{"-kernel", "k", "-device", "virtio-balloon-pci,bus=pcie.0,addr=0x3"},
       "^-device: virtio-balloon-pci needs -machine q35; the microvm takes virtio-balloon-device"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device",
        "virtio-blk-pci,drive=a,bus=rp1,addr=0x3"},
       "^-device: unknown bus 'rp1'; the q35 machine has pcie.0 and its pcie-root-ports' buses \\(no root ports\\)"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device", "pcie-root-port,id=rp2,port=2,bus=pcie.0,addr=2",
        "-device", "virtio-blk-pci,drive=a,bus=rp1,addr=0"},
       "^-device: unknown bus 'rp1'; the q35 machine has pcie.0 and its pcie-root-ports' buses \\('rp2'\\)"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device", "virtio-blk-pci,drive=a,bus=rp1,addr=0x1",
        "-device", "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=2"},
       "^-device: addr 0x1.0 on root port 'rp1': a root port has one slot, addr=0x0"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-drive", "file=/b,id=b", "-device",
        "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=2", "-device", "virtio-blk-pci,drive=a,bus=rp1,addr=0", "-device",
        "virtio-blk-pci,drive=b,bus=rp1,addr=0x0"},
       "^-device: root port 'rp1' already has device 'a'"},
      {{"-machine", "q35", "-kernel", "k", "-device", "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=2", "-device",
        "pcie-root-port,id=rp2,port=2,bus=rp1,addr=0"},
       "^-device: a pcie-root-port goes on bus=pcie.0, not 'rp1'"},
      {{"-machine", "q35", "-kernel", "k", "-device", "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=2", "-device",
        "pcie-root-port,id=rp1,port=2,bus=pcie.0,addr=3"},
       "^-device: duplicate id 'rp1'"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device", "virtio-blk-pci,drive=a,bus=pcie.0,addr=2",
        "-device", "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=2"},
       "^-device: addr 0x2.0 is taken by device 'a'"},
      {{"-kernel", "k", "-device", "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=2"},
       "^-device: pcie-root-port needs -machine q35 \\(the microvm has no PCI\\)"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device", "virtio-blk-pci,drive=a,bus=pcie.0,addr=0"},
       "^-device: addr 0x0.0 is the host bridge's"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a", "-device",
        "virtio-blk-pci,drive=a,bus=pcie.0,addr=0x3", "-device", "virtio-balloon-pci,id=b,bus=pcie.0,addr=3.0"},
       "^-device: addr 0x3.0 is taken by device 'a'"},
      {{"-machine", "q35", "-kernel", "k", "-device", "virtio-balloon-pci,bus=pcie.0,addr=0x4.1"},
       "^-device: addr 0x4.1: function 0 of slot 0x4.0 is empty"},
      {{"-machine", "q35", "-kernel", "k", "-drive", "file=/a,id=a"},
       "^-drive: drive 'a' is not attached by any -device virtio-blk-pci,drive=a"},
      {{"-machine", "microvm,accel=tcg", "-kernel", "k"}, "^-machine: unknown option 'accel'"},
      {{"-kernel", "k", "-boot-entry", "efi"}, "^-boot-entry: unknown entry; expected linux64\\|pvh"},
      {{"-kernel", "k", "-device", "virtio-net-device,netdev=nope"}, "^-device: unknown netdev 'nope'"},
      {{"-kernel", "k", "-netdev", "tap,id=n,ifname=t"}, "^-netdev: netdev 'n' is not attached"},
      {{"-kernel", "k", "-netdev", "tap,id=n,ifname=t", "-netdev", "tap,id=n,ifname=u"},
       "^-netdev: duplicate id 'n'"},
      {{"-kernel", "k", "-netdev", "tap,id=n,ifname=t", "-device", "virtio-net-device,netdev=n,id=a", "-device",
        "virtio-net-device,netdev=n,id=b"},
       "^-device: netdev 'n' already used"},
      {{"-kernel", "k", "-netdev", "tap,id=a,ifname=a", "-netdev", "tap,id=b,ifname=b", "-netdev",
        "tap,id=c,ifname=c", "-device", "virtio-net-device,netdev=a", "-device", "virtio-net-device,netdev=b",
        "-device", "virtio-net-device,netdev=c"},
       "^-device: at most 2 virtio-net devices"},
      {{"-kernel", "k", "-drive", "file=/a,id=a", "-device", "virtio-blk-device,drive=a,addr=0x6"},
       "^-device: addr 6 is out of range; the microvm has 6 block slots"},
      {{"-kernel", "k", "-drive", "file=/a,id=a", "-drive", "file=/b,id=b", "-device", "virtio-blk-device,drive=a,addr=2",
        "-device", "virtio-blk-device,drive=b,addr=0x2"},
       "^-device: addr 2 is given to two devices"},
      {{"-kernel", "k", "-device", "virtio-balloon-device", "-device", "virtio-balloon-device,id=b2"},
       "^-device: at most one virtio-balloon-device"},
      {{"-kernel", "k", "-drive", "file=/a,id=x", "-device", "virtio-blk-device,drive=x", "-netdev",
        "tap,id=x,ifname=t", "-device", "virtio-net-device,netdev=x"},
       "^-device: duplicate id 'x'"},
  };
  std::vector<std::string> seven;
  for (int i = 0; i < 7; ++i) {
    seven.insert(seven.end(), {"-drive", "file=/d,id=d" + std::to_string(i), "-device",
                               "virtio-blk-device,drive=d" + std::to_string(i)});
  }
  seven.insert(seven.end(), {"-kernel", "k"});
  bad.push_back({seven, "^-device: at most 6 virtio-blk devices"});
  std::vector<std::pair<std::string, std::function<void()>>> cases;
  for (const auto& [argv, message] : bad) {
    std::string readable;
    for (char c : message.substr(1)) {
      if (c != '\\') readable += c;
    }
    cases.push_back({"command line: " + readable + "...",
                     [argv = argv, message = message] { ExpectUsageError([&] { Parse(argv); }, message); }});
  }
  return Cases(cases);
}();

TEST("config JSON: netdevs and the three device kinds, as the TypeScript VmConfig names them") {
  VmmConfig c = Parse({"-kernel", "k", "-netdev", "tap,id=n0,ifname=tap0", "-device",
                       "virtio-net-device,netdev=n0,mac=52:54:00:00:00:01", "-device", "virtio-balloon-device"});
  std::string json = ToJson(c);
  EXPECT_TRUE(json.find(R"("netdevs":[{"id":"n0","ifname":"tap0"}])") != std::string::npos);
  EXPECT_TRUE(json.find(R"({"driver":"virtio-net-device","id":"n0","netdev":"n0","mac":"52:54:00:00:00:01"})") !=
              std::string::npos);
  EXPECT_TRUE(json.find(R"({"driver":"virtio-balloon-device","id":"balloon0","deflateOnOom":false,"freePageReporting":false})") !=
              std::string::npos);
}

TEST("config JSON: the TypeScript VmConfig's field names, escaped strings") {
  VmmConfig c = Parse({"-kernel", "k\"1", "-name", "a\nb", "-qmp", "tcp:h:1,server,nowait", "-D", "-S"});
  std::string json = ToJson(c);
  EXPECT_TRUE(json.find(R"("kernel":"k\"1")") != std::string::npos);
  EXPECT_TRUE(json.find(R"("name":"a\nb")") != std::string::npos);
  EXPECT_TRUE(json.find(R"("qmp":{"kind":"tcp","host":"h","port":1,"rateLimit":100})") != std::string::npos);
  EXPECT_TRUE(json.find(R"("logFile":null)") != std::string::npos);
  EXPECT_TRUE(json.find(R"("startPaused":true)") != std::string::npos);
}

}  // namespace
}  // namespace virga::cli
