// virga-vmm's command line (cli/): the input's NUL-separated words are
// argv. Every refusal must be a UsageError naming a flag (anything else
// thrown is a crash here); every accepted command line must print as
// JSON the control plane can parse (-print-config, the control channel).
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "cli/config_json.h"
#include "cli/usage_error.h"
#include "common/json.h"
#include "seeds.h"

namespace {

virga::fuzz::Seeds MakeSeeds() {
  const std::vector<std::vector<std::string>> lines = {
      {"-machine", "microvm", "-kernel", "/vmlinux", "-append", "console=ttyS0", "-smp", "2,maxcpus=4,sockets=2",
       "-m", "512M", "-serial", "stdio"},
      {"-kernel", "/k", "-drive", "file=/d.img,id=rootfs,readonly=off,direct=on", "-device",
       "virtio-blk-device,drive=rootfs,id=vda", "-qmp", "unix:/tmp/q.sock,server,nowait", "-daemonize", "-pidfile",
       "/tmp/p"},
      {"-kernel", "/k", "-netdev", "tap,id=n0,ifname=tap0", "-device",
       "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56", "-device",
       "virtio-balloon-device,deflate-on-oom=true,free-page-reporting=on", "-serial", "unix:/tmp/s.sock,server,nowait"},
      {"-kernel", "/k", "-initrd", "/i", "-S", "-D", "/tmp/log", "-incoming", "file:/tmp/snap", "-name", "vm1"},
      {"-print-config", "-kernel", "/k", "-smp", "cpus=1,cores=1,threads=1", "-m", "1G", "-serial", "pty"},
      {"-help"},
      {"-smp", "195,sockets=3,cores=65", "-kernel", "/k"},
  };
  virga::fuzz::Seeds seeds;
  int i = 0;
  for (const auto& argv : lines) {
    std::vector<uint8_t> bytes;
    for (size_t w = 0; w < argv.size(); ++w) {
      if (w != 0) bytes.push_back(0);
      bytes.insert(bytes.end(), argv[w].begin(), argv[w].end());
    }
    seeds.push_back({std::to_string(i++), bytes});
  }
  return seeds;
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> argv(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) argv.emplace_back();
    else argv.back().push_back(static_cast<char>(data[i]));
  }
  if (size == 0) argv.clear();
  virga::cli::Invocation invocation;
  try {
    invocation = virga::cli::ParseCommandLine(argv);
  } catch (const virga::cli::UsageError&) {
    return 0;
  }
  std::string json = virga::cli::ToJson(invocation.config);
  try {
    virga::Json::Parse(json);
  } catch (const virga::JsonError& e) {
    std::fprintf(stderr, "ToJson wrote JSON the parser refuses: %s\n%s\n", e.what(), json.c_str());
    std::abort();
  }
  return 0;
}
