// The virtio-mmio transport's interrupt line as a driver and KVM see it:
// level-triggered, up while InterruptStatus holds something, asserted
// again at the EOI (the resample) only if the status is still set. Over a
// blk device with no disk, whose configuration-change interrupt the test
// raises; the line is a real eventfd, read back as "how often asserted".
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "devices/irq.h"
#include "unit_test.h"
#include "virtio/blk.h"
#include "virtio/mmio_transport.h"

namespace virga::virtio {
namespace {

constexpr uint64_t kInterruptStatus = 0x060;
constexpr uint64_t kInterruptAck = 0x064;
constexpr uint64_t kStatus = 0x070;
constexpr uint32_t kDriverOk = 1 | 2 | 4;  // ACKNOWLEDGE | DRIVER | DRIVER_OK

struct Rig {
  GuestMemory memory{1 << 20, 1ULL << 32};
  IrqLine irq{16};
  std::shared_ptr<MmioTransport> mmio = std::make_shared<MmioTransport>(std::make_shared<Block>(), &memory, &irq);

  uint32_t Read(uint64_t offset) {
    uint8_t data[4] = {};
    mmio->Read(offset, data, 4);
    uint32_t value;
    std::memcpy(&value, data, 4);
    return value;
  }
  void Write(uint64_t offset, uint32_t value) {
    uint8_t data[4];
    std::memcpy(data, &value, 4);
    mmio->Write(offset, data, 4);
  }
  void DriverOk() { Write(kStatus, kDriverOk); }
  // Raises a configuration-change interrupt: how often that asserted the line.
  uint64_t Interrupt() {
    mmio->SignalConfigChange();
    return Assertions();
  }
  // Into this fresh transport, `source`'s saved state, then what the board
  // does after a restore.
  void RestoreFrom(Rig& source) {
    state::ByteWriter out;
    source.mmio->SaveState(out);
    state::ByteReader in(out.data().data(), out.data().size(), "SLOT");
    mmio->RestoreState(in);
    mmio->LineLowered();
  }
  // How often the line was asserted since the last call (the irqfd's count).
  uint64_t Assertions() {
    uint64_t count = 0;
    if (::read(irq.fd(), &count, sizeof(count)) != sizeof(count)) return 0;
    return count;
  }
};

TEST("virtio-mmio: while the line is up and the guest has not ended the interrupt, more interrupts assert nothing") {
  Rig rig;
  rig.DriverOk();
  EXPECT_EQ(rig.Interrupt(), 1u);
  // A burst the guest's handler will find in the status anyway: no new edge.
  EXPECT_EQ(rig.Interrupt(), 0u);
  EXPECT_EQ(rig.Interrupt(), 0u);
  EXPECT_EQ(rig.Read(kInterruptStatus), 2u);
  rig.Write(kInterruptAck, 2);
  EXPECT_EQ(rig.Read(kInterruptStatus), 0u);
  // The EOI lowers the line; with the status clear it stays down...
  rig.mmio->LineLowered();
  EXPECT_EQ(rig.Assertions(), 0u);
  // ...until the next interrupt.
  EXPECT_EQ(rig.Interrupt(), 1u);
}

TEST("virtio-mmio: at the EOI the line comes up again while the status is still set") {
  Rig rig;
  rig.DriverOk();
  EXPECT_EQ(rig.Interrupt(), 1u);
  // Ended without acknowledging: up again at once.
  rig.mmio->LineLowered();
  EXPECT_EQ(rig.Assertions(), 1u);
  // Acknowledged, then a new interrupt before the EOI: the line is still up,
  // so nothing now, and up again at the EOI because the status is set.
  rig.Write(kInterruptAck, 2);
  EXPECT_EQ(rig.Interrupt(), 0u);
  rig.mmio->LineLowered();
  EXPECT_EQ(rig.Assertions(), 1u);
  EXPECT_EQ(rig.Read(kInterruptStatus), 2u);
}

TEST("virtio-mmio: after a device reset the next interrupt asserts the line without waiting for an EOI") {
  Rig rig;
  rig.DriverOk();
  EXPECT_EQ(rig.Interrupt(), 1u);
  rig.Write(kStatus, 0);
  EXPECT_EQ(rig.Read(kInterruptStatus), 0u);
  rig.DriverOk();
  EXPECT_EQ(rig.Interrupt(), 1u);
}

TEST("virtio-mmio: a restored transport raises its line from the saved interrupt status, once") {
  Rig source;
  source.DriverOk();
  EXPECT_EQ(source.Interrupt(), 1u);
  Rig restored;
  restored.RestoreFrom(source);
  EXPECT_EQ(restored.Assertions(), 1u);
  EXPECT_EQ(restored.Read(kInterruptStatus), 2u);
  EXPECT_EQ(restored.Interrupt(), 0u);

  // Saved with the status clear: the line stays down after the restore.
  source.Write(kInterruptAck, 2);
  Rig quiet;
  quiet.RestoreFrom(source);
  EXPECT_EQ(quiet.Assertions(), 0u);
}

}  // namespace
}  // namespace virga::virtio
