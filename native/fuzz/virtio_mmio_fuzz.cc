// The virtio-mmio transport as a hostile driver programs it from a vCPU
// (virtio/mmio_transport.cc): register reads and writes of any offset and
// width (feature selection, queue setup, status transitions, config
// space, interrupt acknowledgement), interleaved with queue notifications
// served as the I/O thread serves them, over a blk (no disk), net (no
// tap) or balloon device.
//
// Input: device (1 byte: 0 blk, 1 net, 2 balloon), RAM image length (2
// bytes LE) and image, then operations of 12 bytes: kind (0 read, 1 write,
// 2 notify), offset (2), width (1), value (8).
#include <cstring>
#include <memory>

#include "devices/irq.h"
#include "fuzz_guest.h"
#include "io/event_loop.h"
#include "seeds.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/mmio_transport.h"
#include "virtio/net.h"

namespace {

using namespace virga;

std::shared_ptr<virtio::VirtioDevice> MakeDevice(uint8_t kind) {
  static auto loop = std::make_shared<EventLoop>();
  switch (kind % 3) {
    case 1:
      return std::make_shared<virtio::Net>(std::array<uint8_t, 6>{0x52, 0x54, 0, 1, 2, 3}, nullptr, loop);
    case 2:
      return std::make_shared<virtio::Balloon>(virtio::BalloonConfig{true, true}, [](uint32_t) {});
    default:
      return std::make_shared<virtio::Block>();
  }
}

struct Op {
  uint8_t kind;
  uint16_t offset;
  uint8_t width;
  uint64_t value;
};

std::vector<uint8_t> Encode(uint8_t device, const fuzz::SeedImage& image, const std::vector<Op>& ops) {
  std::vector<uint8_t> ram = image.Finish();
  std::vector<uint8_t> out = {device, static_cast<uint8_t>(ram.size()), static_cast<uint8_t>(ram.size() >> 8)};
  out.insert(out.end(), ram.begin(), ram.end());
  for (const Op& op : ops) {
    uint8_t bytes[12];
    bytes[0] = op.kind;
    std::memcpy(bytes + 1, &op.offset, 2);
    bytes[3] = op.width;
    std::memcpy(bytes + 4, &op.value, 8);
    out.insert(out.end(), bytes, bytes + 12);
  }
  return out;
}

// A driver's bring-up as Linux's virtio_mmio does it, queue 0 of 16 at
// address 0 (available ring at 256, used ring at 296), then one request
// posted and notified.
fuzz::Seeds MakeSeeds() {
  auto w = [](uint16_t offset, uint64_t value) { return Op{1, offset, 3, value}; };
  auto r = [](uint16_t offset) { return Op{0, offset, 3, 0}; };
  std::vector<Op> bring_up = {r(0x000), r(0x004), r(0x008), w(0x070, 0), w(0x070, 1), w(0x070, 3),
                              w(0x014, 0), r(0x010), w(0x014, 1), r(0x010), w(0x024, 1), w(0x020, 1),
                              w(0x024, 0), w(0x020, 1u << 29), w(0x070, 11), r(0x070), w(0x030, 0), r(0x034),
                              w(0x038, 16), w(0x080, 0), w(0x084, 0), w(0x090, 256), w(0x094, 0), w(0x0a0, 296),
                              w(0x0a4, 0), w(0x044, 1), w(0x070, 15), Op{0, 0x100, 7, 0}, Op{2, 0, 3, 0},
                              r(0x060), w(0x064, 1), r(0x0fc)};
  fuzz::Seeds seeds;
  const char* names[] = {"blk", "net", "balloon"};
  for (uint8_t device = 0; device < 3; ++device) {
    fuzz::SeedImage image;
    image.Put<uint32_t>(0x200, 0);
    image.Desc(0, 0, 0x200, 16, 1, 1);
    image.Desc(0, 1, 0x400, 512, 3, 2);
    image.Desc(0, 2, 0x600, 1, 2, 0);
    image.Avail(256, 16, {0});
    image.Put<uint8_t>(0x7ff, 0);
    seeds.push_back({names[device], Encode(device, image, bring_up)});
  }
  return seeds;
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  uint8_t kind = data[0];
  size_t image_len = std::min<size_t>(data[1] | (data[2] << 8), size - 3);
  fuzz::LoadImage(std::vector<uint8_t>(data + 3, data + 3 + image_len));
  auto device = MakeDevice(kind);
  IrqLine irq(16);
  virtio::MmioTransport transport(device, &fuzz::Guest(), &irq);
  for (size_t at = 3 + image_len; at + 12 <= size; at += 12) {
    Op op{data[at], 0, data[at + 3], 0};
    std::memcpy(&op.offset, data + at + 1, 2);
    std::memcpy(&op.value, data + at + 4, 8);
    uint8_t bytes[8];
    std::memcpy(bytes, &op.value, 8);
    // A vCPU's MMIO exit carries 1 to 8 bytes.
    uint32_t width = op.width % 8 + 1;
    switch (op.kind % 3) {
      case 0:
        transport.Read(op.offset, bytes, width);
        break;
      case 1:
        transport.Write(op.offset, bytes, width);
        break;
      default:
        transport.OnNotify(static_cast<uint16_t>(op.value % device->queue_count()));
        break;
    }
  }
  return 0;
}
