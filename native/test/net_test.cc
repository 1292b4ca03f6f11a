#include "virtio/net.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "unit_test.h"

namespace virga::virtio {
namespace {

// TX queue of 32 at these addresses; frame i is a 12-byte header at
// kFrames + 256 * i followed by 100 bytes of payload.
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kFrames = 0x10000;
constexpr uint16_t kQueueSize = 32;  // two descriptors per frame
constexpr uint16_t kFrameCount = 16;
constexpr uint32_t kPayload = 100;
// RX queue of kQueueSize one-descriptor buffers of kRxBuffer bytes.
constexpr uint64_t kRxDesc = 0x4000, kRxAvail = 0x5000, kRxUsed = 0x6000, kRxBuffers = 0x40000;
constexpr uint32_t kRxBuffer = 2048;

struct NetFixture {
  GuestMemory memory{1 << 20, 1ULL << 32};
  std::vector<Queue> queues{Queue(256), Queue(kQueueSize)};
  UniqueFd network;  // the far end of the "tap"
  std::shared_ptr<EventLoop> loop = std::make_shared<EventLoop>();
  std::unique_ptr<Net> net;

  // Used-buffer interrupts raised, per queue.
  std::array<int, 2> signals{};

  // `serve_tap`: the loop runs and answers the tap's readiness; without it
  // only ProcessQueue moves frames, as when the loop is busy elsewhere.
  explicit NetFixture(bool serve_tap = true) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) throw std::runtime_error("socketpair");
    network = UniqueFd(pair[1]);
    // The smallest send buffer the kernel allows: a few frames fill it.
    int smallest = 1;
    ::setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &smallest, sizeof(smallest));
    SetUp(queues[Net::kTxQueue], kDesc, kAvail, kUsed);
    SetUp(queues[Net::kRxQueue], kRxDesc, kRxAvail, kRxUsed);
    if (serve_tap) loop->Start();
    net = std::make_unique<Net>(std::array<uint8_t, 6>{0x52, 0x54, 0, 1, 2, 3}, Tap::FrameSocket(UniqueFd(pair[0]), "test"),
                                loop);
    net->Activate({&memory, &queues, [this](uint16_t queue) { ++signals[queue]; }, [] {}}, kFeatureVersion1);
  }

  static void SetUp(Queue& queue, uint64_t desc, uint64_t avail, uint64_t used) {
    queue.set_size(kQueueSize);
    queue.desc_table = desc;
    queue.avail_ring = avail;
    queue.used_ring = used;
    queue.set_ready(true);
  }

  // Posts `count` receive buffers of kRxBuffer bytes each.
  void PostReceiveBuffers(uint16_t count) {
    for (uint16_t i = 0; i < count; ++i) {
      memory.WriteObj(kRxDesc + 16 * i, kRxBuffers + uint64_t{kRxBuffer} * i);
      memory.WriteObj<uint32_t>(kRxDesc + 16 * i + 8, kRxBuffer);
      memory.WriteObj<uint16_t>(kRxDesc + 16 * i + 12, 2);  // device-writable
      memory.WriteObj<uint16_t>(kRxAvail + 4 + 2 * i, i);
    }
    memory.WriteObj<uint16_t>(kRxAvail + 2, count);
  }
  uint16_t RxUsedIndex() {
    uint16_t idx = 0;
    memory.ReadObj(kRxUsed + 2, &idx);
    return idx;
  }
  ~NetFixture() {
    net.reset();
    loop->Stop();
  }

  // Posts `count` frames, each a header descriptor chained to its payload.
  void PostFrames(uint16_t count) {
    for (uint16_t i = 0; i < count; ++i) {
      uint64_t header = kFrames + 256ULL * i;
      for (uint32_t b = 0; b < 12 + kPayload; ++b) memory.WriteObj<uint8_t>(header + b, static_cast<uint8_t>(i));
      PutDesc(2 * i, header, 12, 1, static_cast<uint16_t>(2 * i + 1));
      PutDesc(static_cast<uint16_t>(2 * i + 1), header + 12, kPayload, 0, 0);
      memory.WriteObj<uint16_t>(kAvail + 4 + 2 * i, static_cast<uint16_t>(2 * i));
    }
    memory.WriteObj<uint16_t>(kAvail + 2, count);
  }
  void PutDesc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    memory.WriteObj(kDesc + 16 * i, addr);
    memory.WriteObj(kDesc + 16 * i + 8, len);
    memory.WriteObj(kDesc + 16 * i + 12, flags);
    memory.WriteObj(kDesc + 16 * i + 14, next);
  }
  uint16_t UsedIndex() {
    uint16_t idx = 0;
    memory.ReadObj(kUsed + 2, &idx);
    return idx;
  }
  // Reads every frame waiting at the far end; returns the first byte of each.
  std::vector<uint8_t> Drain() {
    std::vector<uint8_t> firsts;
    uint8_t buffer[512];
    ssize_t n;
    while ((n = ::recv(network.get(), buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
      EXPECT_EQ(n, static_cast<ssize_t>(12 + kPayload));
      firsts.push_back(buffer[12]);
    }
    return firsts;
  }
};

TEST("virtio-net: a backend with no room holds the guest's frames until it is writable, dropping none") {
  NetFixture f;
  // The socket's send buffer fills after a few unread frames and it
  // refuses more (EAGAIN), as a tap with a full send buffer does.
  f.PostFrames(kFrameCount);
  f.net->ProcessQueue(Net::kTxQueue);
  uint16_t sent_first = f.UsedIndex();
  EXPECT_TRUE(sent_first > 0);
  EXPECT_TRUE(sent_first < kFrameCount);
  EXPECT_EQ(f.net->counters().tx_dropped, 0u);

  // The far end reads: the tap turns writable and the rest goes, in order.
  std::vector<uint8_t> got;
  for (int i = 0; i < 200 && got.size() < kFrameCount; ++i) {
    std::vector<uint8_t> more = f.Drain();
    got.insert(got.end(), more.begin(), more.end());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(got.size(), static_cast<size_t>(kFrameCount));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], static_cast<uint8_t>(i));
  EXPECT_EQ(f.UsedIndex(), kFrameCount);
  NetCounters counters = f.net->counters();
  EXPECT_EQ(counters.tx_frames, static_cast<uint64_t>(kFrameCount));
  EXPECT_EQ(counters.tx_dropped, 0u);
}

TEST("virtio-net: counts the driver's notifications, the interrupts it gets and its TSO frames") {
  NetFixture f;
  // Frame i's header bytes are all i: frame 0 has gso_type NONE, frame 1
  // a GSO type (1 is VIRTIO_NET_HDR_GSO_TCPV4).
  f.PostFrames(2);
  f.net->ProcessQueue(Net::kTxQueue);
  EXPECT_EQ(f.UsedIndex(), 2);
  NetCounters counters = f.net->counters();
  EXPECT_EQ(counters.tx_notifications, 1u);
  EXPECT_EQ(counters.tx_frames, 2u);
  EXPECT_EQ(counters.tx_gso_frames, 1u);
  // One pass, one interrupt for both frames (the driver did not suppress it).
  EXPECT_EQ(counters.tx_interrupts, 1u);
  EXPECT_EQ(counters.rx_interrupts, 0u);
  EXPECT_EQ(counters.tx_blocked, 0u);
  EXPECT_EQ(f.Drain().size(), 2u);
}

TEST("virtio-net: what the host answers inside a transmit reaches the guest in the same pass") {
  // The loop does not serve the tap, so only the transmit pass can deliver.
  NetFixture f(/*serve_tap=*/false);
  f.PostReceiveBuffers(4);
  // The host's answer (a local TCP peer's ACK is written to the tap while
  // the guest's frame is still being written) is waiting when the pass
  // looks: a 12-byte header and 54 bytes of frame.
  std::vector<uint8_t> reply(12 + 54, 0xab);
  reply[0] = reply[1] = 0;  // no flags, no GSO
  EXPECT_EQ(::send(f.network.get(), reply.data(), reply.size(), 0), static_cast<ssize_t>(reply.size()));
  f.PostFrames(1);
  f.net->ProcessQueue(Net::kTxQueue);
  EXPECT_EQ(f.UsedIndex(), 1);
  EXPECT_EQ(f.RxUsedIndex(), 1);
  uint32_t written = 0;
  f.memory.ReadObj(kRxUsed + 4 + 4, &written);
  EXPECT_EQ(written, static_cast<uint32_t>(reply.size()));
  // Both completions are signalled at the end of that one pass.
  EXPECT_EQ(f.signals[Net::kTxQueue], 1);
  EXPECT_EQ(f.signals[Net::kRxQueue], 1);
  NetCounters counters = f.net->counters();
  EXPECT_EQ(counters.rx_frames, 1u);
  EXPECT_EQ(counters.tx_interrupts, 1u);
  EXPECT_EQ(counters.rx_interrupts, 1u);
}

TEST("virtio-net: a NIC with another wire MAC sends the guest's frames with it, leaving guest memory as it was") {
  NetFixture f;
  const std::array<uint8_t, 6> guest{0x52, 0x54, 0, 1, 2, 3}, wire{0x52, 0x56, 9, 8, 7, 0};
  f.net->SetMacs(guest, wire);
  // Frame 0 small, frame 1 longer than the span copied out for rewriting:
  // its tail still goes straight from guest memory.
  const uint32_t lengths[] = {kPayload, 2100};
  const uint64_t payloads[] = {kFrames + 12, kFrames + 0x1000};
  for (uint16_t i = 0; i < 2; ++i) {
    uint64_t header = kFrames + 256ULL * i;
    for (uint32_t b = 0; b < 12; ++b) f.memory.WriteObj<uint8_t>(header + b, 0);
    for (uint32_t b = 0; b < lengths[i]; ++b) f.memory.WriteObj<uint8_t>(payloads[i] + b, static_cast<uint8_t>(b * 3));
    for (uint32_t b = 0; b < 6; ++b) f.memory.WriteObj<uint8_t>(payloads[i] + 6 + b, guest[b]);
    f.PutDesc(2 * i, header, 12, 1, static_cast<uint16_t>(2 * i + 1));
    f.PutDesc(static_cast<uint16_t>(2 * i + 1), payloads[i], lengths[i], 0, 0);
    f.memory.WriteObj<uint16_t>(kAvail + 4 + 2 * i, static_cast<uint16_t>(2 * i));
  }
  f.memory.WriteObj<uint16_t>(kAvail + 2, 2);
  f.net->ProcessQueue(Net::kTxQueue);
  for (uint16_t i = 0; i < 2; ++i) {
    std::vector<uint8_t> got(4096);
    ssize_t n = -1;
    EXPECT_TRUE(test::WaitUntil([&] { return (n = ::recv(f.network.get(), got.data(), got.size(), MSG_DONTWAIT)) > 0; }));
    EXPECT_EQ(n, static_cast<ssize_t>(12 + lengths[i]));
    for (uint32_t b = 0; b < lengths[i]; ++b) {
      uint8_t expected = b >= 6 && b < 12 ? wire[b - 6] : static_cast<uint8_t>(b * 3);
      EXPECT_EQ(got[12 + b], expected);
    }
    std::array<uint8_t, 6> in_memory{};
    f.memory.Read(payloads[i] + 6, in_memory.data(), 6);
    EXPECT_TRUE(in_memory == guest);
  }
  EXPECT_EQ(f.net->counters().tx_dropped, 0u);
  EXPECT_TRUE(f.net->guest_mac() == guest);
  EXPECT_TRUE(f.net->wire_mac() == wire);
}

}  // namespace
}  // namespace virga::virtio
