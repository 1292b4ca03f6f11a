// virtio-net as a hostile driver and a hostile network drive it: transmit
// chains walked from the TX queue and written to the backend, and frames
// from the backend spread over the receive buffers the driver posted
// (with and without mergeable buffers). The backend is a socket pair
// standing in for the tap, one frame per message.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/socket.h>

#include <memory>

#include "fuzz_guest.h"
#include "seeds.h"
#include "virtio/net.h"

namespace {

using virga::Tap;
using virga::UniqueFd;
using virga::virtio::Net;
using virga::virtio::Queue;

constexpr uint64_t kFeatureMrgRxbuf = 1ULL << 15;
constexpr uint64_t kFeatureGuestCsum = 1ULL << 1;

// RX and TX queues of 16 (RX rings at 0, TX at 432), receive buffers of
// 2 KiB from 0x1000, one frame to send (virtio-net header at 0x400, 64
// bytes at 0x440), and frames of the given sizes arriving from the network.
virga::fuzz::Seeds MakeSeeds() {
  struct Case {
    const char* name;
    bool mergeable;
    uint16_t rx_buffers;
    std::vector<uint32_t> frames;
  };
  const Case cases[] = {
      {"mergeable-one-frame", true, 4, {1514}},
      {"single-buffer", false, 2, {100, 60}},
      {"mergeable-spread", true, 4, {5000}},
      {"no-room", false, 1, {4000}},
  };
  virga::fuzz::Seeds seeds;
  for (const Case& c : cases) {
    virga::fuzz::SeedImage image;
    std::vector<uint16_t> heads;
    for (uint16_t i = 0; i < c.rx_buffers; ++i) {
      image.Desc(0, i, 0x1000 + 0x800ULL * i, 0x800, 2, 0);
      heads.push_back(i);
    }
    image.Avail(256, 16, heads);
    image.Desc(432, 0, 0x400, 12, 1, 1);
    image.Desc(432, 1, 0x440, 64, 0, 0);
    image.Avail(688, 16, {0});
    image.Put<uint8_t>(0x440, 0xff);
    image.Put<uint8_t>(0x7fff, 0);  // room for the buffers above in the image
    std::vector<uint8_t> config = {c.mergeable, 1, 4, 4, 0, static_cast<uint8_t>(c.frames.size())};
    for (uint32_t bytes : c.frames) {
      config.insert(config.end(), {static_cast<uint8_t>(bytes >> 16), static_cast<uint8_t>(bytes >> 8),
                                   static_cast<uint8_t>(bytes)});
    }
    config.push_back(1);  // a backend
    image.Config(config);
    seeds.push_back({c.name, image.Finish()});
  }
  return seeds;
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  uint64_t features = virga::virtio::kFeatureVersion1;
  if (in.ConsumeBool()) features |= kFeatureMrgRxbuf;
  if (in.ConsumeBool()) features |= kFeatureGuestCsum;
  uint8_t rx_log2 = in.ConsumeIntegralInRange<uint8_t>(0, 8);
  uint8_t tx_log2 = in.ConsumeIntegralInRange<uint8_t>(0, 8);
  bool event_idx = in.ConsumeBool();
  // Frames arriving from the network: sizes here, bytes from a pattern (the
  // device copies them, it does not parse them).
  int frames = in.ConsumeIntegralInRange<int>(0, 4);
  std::vector<size_t> frame_sizes;
  for (int i = 0; i < frames; ++i) frame_sizes.push_back(in.ConsumeIntegralInRange<size_t>(0, 66000));
  bool with_backend = in.ConsumeBool();
  virga::fuzz::LoadImage(in.ConsumeRemainingBytes<uint8_t>());

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) return 0;
  UniqueFd network(pair[1]);
  int buffer = 1 << 20;
  ::setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  ::setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  auto loop = std::make_shared<virga::EventLoop>();
  std::unique_ptr<Tap> tap = Tap::FrameSocket(UniqueFd(pair[0]), "fuzz");
  Net net({0x52, 0x54, 0, 0x12, 0x34, 0x56}, with_backend ? std::move(tap) : nullptr, loop);

  std::vector<Queue> queues{Queue(net.queue_max_size()), Queue(net.queue_max_size())};
  virga::fuzz::QueueLayout layout;
  layout.Place(queues[Net::kRxQueue], rx_log2, event_idx);
  layout.Place(queues[Net::kTxQueue], tx_log2, event_idx);
  for (const Queue& q : queues) {
    if (!q.IsValid(virga::fuzz::Guest())) return 0;
  }
  net.Activate({&virga::fuzz::Guest(), &queues, [](uint16_t) {}, [] {}}, features);
  static std::vector<uint8_t> pattern = [] {
    std::vector<uint8_t> p(66000);
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(i * 13 + 7);
    return p;
  }();
  for (size_t bytes : frame_sizes) {
    ::send(network.get(), pattern.data(), bytes, MSG_DONTWAIT);
    net.ProcessQueue(Net::kRxQueue);
  }
  net.ProcessQueue(Net::kTxQueue);
  net.ProcessQueue(Net::kRxQueue);
  uint8_t sink[70000];
  while (::recv(network.get(), sink, sizeof(sink), MSG_DONTWAIT) > 0) {
  }
  if (with_backend) net.Detach();
  return 0;
}
