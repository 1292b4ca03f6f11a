// The modern virtio-pci transport as a driver programs it, over a blk
// device with no disk: its capabilities, the common configuration, MSI-X
// vectors per queue, the ISR, and notify registers that follow BAR 0.
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "devices/bus.h"
#include "unit_test.h"
#include "virtio/blk.h"
#include "virtio/pci_transport.h"

namespace virga::virtio {
namespace {

struct Rig {
  GuestMemory memory{1 << 20, 1ULL << 32};
  std::vector<uint16_t> fired;
  std::vector<std::pair<uint16_t, pci::MsiMessage>> routed;
  std::vector<std::pair<uint64_t, uint64_t>> moves;
  std::shared_ptr<PciTransport> pci;

  Rig() {
    pci = std::make_shared<PciTransport>(
        std::make_shared<Block>(), &memory,
        [this](uint16_t v, const pci::MsiMessage& m) { routed.push_back({v, m}); },
        [this](uint16_t v) { fired.push_back(v); });
    pci->SetNotifyMoved([this](uint64_t from, uint64_t to) { moves.push_back({from, to}); });
  }
  uint32_t Common(uint64_t offset, uint32_t len) {
    uint8_t data[4] = {};
    pci->ReadRegisters(PciTransport::kCommonOffset + offset, data, len);
    return data[0] | data[1] << 8 | data[2] << 16 | static_cast<uint32_t>(data[3]) << 24;
  }
  void SetCommon(uint64_t offset, uint32_t len, uint32_t value) {
    uint8_t data[4] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                       static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
    pci->WriteRegisters(PciTransport::kCommonOffset + offset, data, len);
  }
};

TEST("virtio-pci: 1af4:1042 revision 1, virtio capabilities pointing into BAR 0, then MSI-X in BAR 1") {
  Rig rig;
  EXPECT_EQ(rig.pci->ReadConfig(0, 4), 0x10421af4u);
  EXPECT_EQ(rig.pci->ReadConfig(8, 4), 0x01800001u);
  EXPECT_EQ(rig.pci->ReadConfig(0x34, 1), 0x40u);
  // cfg_type, bar, offset, length of each, in list order.
  std::vector<std::vector<uint32_t>> want = {{1, 0, 0x0, 0x38}, {3, 0, 0x1000, 1}, {4, 0, 0x2000, 0x1000}, {2, 0, 0x3000, 4},
                                                {5, 0, 0, 0}};
  uint32_t cap = 0x40;
  for (const auto& w : want) {
    uint32_t head = rig.pci->ReadConfig(cap, 4);
    EXPECT_EQ(head & 0xff, 0x09u);
    EXPECT_EQ(head >> 24, w[0]);
    EXPECT_EQ(rig.pci->ReadConfig(cap + 4, 1), w[1]);
    EXPECT_EQ(rig.pci->ReadConfig(cap + 8, 4), w[2]);
    EXPECT_EQ(rig.pci->ReadConfig(cap + 12, 4), w[3]);
    if (w[0] == 2) EXPECT_EQ(rig.pci->ReadConfig(cap + 16, 4), PciTransport::kNotifyMultiplier);
    cap = (head >> 8) & 0xff;
  }
  // MSI-X: two vectors (one queue and configuration changes), table and PBA in BAR 1.
  EXPECT_EQ(rig.pci->ReadConfig(cap, 4), 0x00010011u);
  EXPECT_EQ(rig.pci->ReadConfig(cap + 4, 4), 0x1u);
  EXPECT_EQ(rig.pci->ReadConfig(cap + 8, 4), 0x801u);
}

TEST("virtio-pci: vectors the function lacks read back as NO_VECTOR; a config change raises the chosen vector") {
  Rig rig;
  rig.SetCommon(0x10, 2, 2);  // config_msix_vector: only 0 and 1 exist
  EXPECT_EQ(rig.Common(0x10, 2), 0xffffu);
  rig.SetCommon(0x16, 2, 0);             // queue_select
  EXPECT_EQ(rig.Common(0x18, 2), 256u);  // queue_size: the maximum until the driver writes it
  EXPECT_EQ(rig.Common(0x1e, 2), 0u);    // queue_notify_off
  rig.SetCommon(0x1a, 2, 1);             // queue_msix_vector
  EXPECT_EQ(rig.Common(0x1a, 2), 1u);
  EXPECT_EQ(rig.Common(0x12, 2), 1u);  // num_queues

  // MSI-X on, vector 0 unmasked; DRIVER_OK.
  uint32_t msix = 0x98;
  rig.pci->WriteConfig(msix, 4, rig.pci->ReadConfig(msix, 4) | 0x80000000u);
  uint8_t unmasked[4] = {0, 0, 0, 0};
  rig.pci->msix().WriteTable(12, unmasked, 4);
  rig.SetCommon(0x14, 1, 1 | 2 | 4);
  rig.pci->SignalConfigChange();  // NO_VECTOR: nothing to raise
  EXPECT_TRUE(rig.fired.empty());
  rig.SetCommon(0x10, 2, 0);
  rig.pci->SignalConfigChange();
  EXPECT_TRUE(rig.fired == std::vector<uint16_t>{0});
  // The ISR says what happened, and reading it clears it.
  uint8_t isr = 0;
  rig.pci->ReadRegisters(PciTransport::kIsrOffset, &isr, 1);
  EXPECT_EQ(isr, 2u);
  rig.pci->ReadRegisters(PciTransport::kIsrOffset, &isr, 1);
  EXPECT_EQ(isr, 0u);
  // A reset forgets the driver's vectors.
  rig.SetCommon(0x14, 1, 0);
  EXPECT_EQ(rig.Common(0x10, 2), 0xffffu);
}

TEST("virtio-pci: the configuration-access capability's data field reads and writes the BAR its window names") {
  Rig rig;
  uint32_t cap = 0x84;
  EXPECT_EQ(rig.pci->ReadConfig(cap, 4) >> 24, 5u);
  rig.pci->WriteConfig(cap + 4, 1, PciTransport::kRegistersBar);
  rig.pci->WriteConfig(cap + 8, 4, 0x12);  // num_queues
  rig.pci->WriteConfig(cap + 12, 4, 2);
  EXPECT_EQ(rig.pci->ReadConfig(cap + 16, 4), 1u);
  rig.pci->WriteConfig(cap + 8, 4, 0x10);  // config_msix_vector
  rig.pci->WriteConfig(cap + 16, 4, 1);
  EXPECT_EQ(rig.Common(0x10, 2), 1u);
  // The MSI-X table through BAR 1: vector 0 starts masked.
  rig.pci->WriteConfig(cap + 4, 1, PciTransport::kMsixBar);
  rig.pci->WriteConfig(cap + 8, 4, 12);
  rig.pci->WriteConfig(cap + 12, 4, 4);
  EXPECT_EQ(rig.pci->ReadConfig(cap + 16, 4), 1u);
}

TEST("virtio-pci: the notify registers follow BAR 0, and a notify write the kernel missed signals the queue's eventfd") {
  Rig rig;
  Bus mmio;
  rig.pci->AssignBar(PciTransport::kRegistersBar, 0xc0000000);
  rig.pci->WriteConfig(pci::kCommand, 2, pci::kCommandMemory);
  rig.pci->UpdateBarMappings(mmio);
  rig.pci->WriteConfig(pci::kBar0, 4, 0xc0010000);
  rig.pci->UpdateBarMappings(mmio);
  rig.pci->WriteConfig(pci::kCommand, 2, 0);
  rig.pci->UpdateBarMappings(mmio);
  std::vector<std::pair<uint64_t, uint64_t>> want = {
      {0, 0xc0003000}, {0xc0003000, 0xc0013000}, {0xc0013000, 0}};
  EXPECT_TRUE(rig.moves == want);
  uint8_t index[2] = {0, 0};
  rig.pci->WriteRegisters(PciTransport::kNotifyOffset, index, 2);
  uint64_t count = 0;
  EXPECT_EQ(::read(rig.pci->notify_fds()[0].get(), &count, sizeof(count)), 8);
  EXPECT_EQ(count, 1u);
}

TEST("virtio-pci: a restored function has the saved BARs, MSI-X table, vectors and status, and routes its vectors again") {
  Rig before;
  Bus mmio;
  before.pci->AssignBar(PciTransport::kRegistersBar, 0xc0000000);
  // The guest moves BAR 0, turns decoding on, programs vector 1 and enables MSI-X.
  before.pci->WriteConfig(pci::kBar0, 4, 0xc0040000);
  before.pci->WriteConfig(pci::kCommand, 2, pci::kCommandMemory | 0x4);
  before.pci->UpdateBarMappings(mmio);
  uint8_t entry[16] = {0x00, 0x10, 0xe0, 0xfe, 0, 0, 0, 0, 0x41, 0, 0, 0, 0, 0, 0, 0};
  before.pci->msix().WriteTable(16, entry, 4);
  before.pci->msix().WriteTable(24, entry + 8, 4);
  before.pci->msix().WriteTable(28, entry + 12, 4);
  before.pci->WriteConfig(0x98, 4, before.pci->ReadConfig(0x98, 4) | 0x80000000u);
  before.SetCommon(0x10, 2, 1);  // config_msix_vector
  before.SetCommon(0x16, 2, 0);
  before.SetCommon(0x1a, 2, 1);  // queue 0's vector
  before.SetCommon(0x14, 1, 1 | 2 | 4);
  state::ByteWriter out;
  before.pci->SaveFunction(out);

  Rig after;
  Bus mmio2;
  after.pci->AssignBar(PciTransport::kRegistersBar, 0xc0000000);
  state::ByteReader in(out.data().data(), out.data().size(), "PCIF");
  after.pci->RestoreFunction(in);
  in.ExpectEnd();
  after.pci->UpdateBarMappings(mmio2);
  EXPECT_EQ(after.pci->ReadConfig(pci::kBar0, 4), 0xc0040000u);
  EXPECT_EQ(after.pci->ReadConfig(pci::kCommand, 2), uint32_t{pci::kCommandMemory | 0x4});
  // The notify registers' ioeventfds go where the guest put BAR 0.
  EXPECT_TRUE(after.moves == (std::vector<std::pair<uint64_t, uint64_t>>{{0, 0xc0043000}}));
  uint8_t byte = 0;
  EXPECT_TRUE(mmio2.Read(0xc0040000 + PciTransport::kDeviceConfigOffset, &byte, 1));
  // Vector 1's message reaches the board's route again (its KVM GSI route).
  bool routed = false;
  for (const auto& [v, m] : after.routed) routed |= v == 1 && m == pci::MsiMessage{0xfee01000, 0x41};
  EXPECT_TRUE(routed);
  EXPECT_EQ(after.Common(0x10, 2), 1u);
  EXPECT_EQ(after.Common(0x1a, 2), 1u);
  EXPECT_EQ(after.Common(0x14, 1), 7u);
  EXPECT_TRUE(after.pci->msix().enabled());
  after.pci->SignalConfigChange();
  EXPECT_TRUE(after.fired == std::vector<uint16_t>{1});

  // Another kind of function refuses the bytes, naming the field.
  auto net = std::make_shared<PciTransport>(std::make_shared<Block>(), &after.memory,
                                            [](uint16_t, const pci::MsiMessage&) {}, [](uint16_t) {});
  std::vector<uint8_t> other = out.data();
  other[pci::kDeviceId] ^= 1;
  state::ByteReader bad(other.data(), other.size(), "PCIF");
  EXPECT_THROWS_WITH(net->RestoreFunction(bad), "PCIF: its device id differs from this function's");
}

TEST("virtio-pci: without MSI-X an interrupt raises INTx (pin A) until the driver reads the ISR; INTx disable holds it") {
  Rig rig;
  int raised = 0;
  rig.pci->SetIntx([&raised] { ++raised; });
  EXPECT_EQ(rig.pci->ReadConfig(pci::kInterruptPin, 1), 1u);
  rig.SetCommon(0x14, 1, 1 | 2 | 4);
  rig.pci->SignalConfigChange();
  EXPECT_EQ(raised, 1);
  EXPECT_TRUE(rig.fired.empty());
  // The line stays up (the board asserts it again at each EOI) until the ISR is read.
  EXPECT_TRUE(rig.pci->IntxPending());
  uint8_t isr = 0;
  rig.pci->ReadRegisters(PciTransport::kIsrOffset, &isr, 1);
  EXPECT_EQ(isr, 2u);
  EXPECT_TRUE(!rig.pci->IntxPending());
  // Command bit 10 (INTx disable): pending in the ISR, but no line.
  rig.pci->WriteConfig(pci::kCommand, 2, pci::kCommandIntxDisable);
  rig.pci->SignalConfigChange();
  EXPECT_EQ(raised, 1);
  EXPECT_TRUE(!rig.pci->IntxPending());
  // With MSI-X on, the vector instead.
  rig.pci->WriteConfig(pci::kCommand, 2, 0);
  rig.pci->ReadRegisters(PciTransport::kIsrOffset, &isr, 1);
  rig.pci->WriteConfig(0x98, 4, rig.pci->ReadConfig(0x98, 4) | 0x80000000u);
  uint8_t unmasked[4] = {0, 0, 0, 0};
  rig.pci->msix().WriteTable(12, unmasked, 4);
  rig.SetCommon(0x10, 2, 0);
  rig.pci->SignalConfigChange();
  EXPECT_EQ(raised, 1);
  EXPECT_TRUE(rig.fired == std::vector<uint16_t>{0});
  EXPECT_TRUE(!rig.pci->IntxPending());
}

}  // namespace
}  // namespace virga::virtio
