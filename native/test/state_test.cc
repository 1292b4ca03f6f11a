#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "state/crc32c.h"
#include "state/memory_file.h"
#include "state/state_file.h"
#include "unit_test.h"
#include "vm/machine_layout.h"

namespace virga::state {
namespace {

std::vector<uint8_t> SampleFile() {
  StateFileWriter writer;
  ByteWriter a, b;
  a.U32(7);
  a.String("seven");
  b.U64(1ULL << 40);
  writer.Section("AAAA", a);
  writer.Section("VCPU", b);
  writer.Section("VCPU", a);
  return writer.Finish("0.1.0");
}

TEST("state file: sections round-trip, repeated tags in order") {
  StateFile file = StateFile::Parse(SampleFile(), "t");
  EXPECT_TRUE(file.vmm_version() == "0.1.0");
  EXPECT_EQ(file.Count("VCPU"), 2u);
  ByteReader a = file.Section("AAAA");
  EXPECT_EQ(a.U32(), 7u);
  EXPECT_TRUE(a.String() == "seven");
  a.ExpectEnd();
  EXPECT_EQ(file.Section("VCPU", 0).U64(), 1ULL << 40);
  EXPECT_EQ(file.Section("VCPU", 1).U32(), 7u);
  EXPECT_THROWS_WITH(file.Section("NOPE"), "t has no section NOPE");
}

TEST("state file: truncated, corrupt, foreign and other-format files are refused with the reason") {
  std::vector<uint8_t> good = SampleFile();
  std::vector<uint8_t> truncated(good.begin(), good.end() - 9);
  EXPECT_THROWS_WITH(StateFile::Parse(truncated, "s"), "s is corrupt or truncated (checksum mismatch)");
  std::vector<uint8_t> flipped = good;
  flipped[20] ^= 0x40;
  EXPECT_THROWS_WITH(StateFile::Parse(flipped, "s"), "checksum mismatch");
  std::vector<uint8_t> foreign = {'Q', 'E', 'V', 'M', 0, 0, 0, 3};
  EXPECT_THROWS_WITH(StateFile::Parse(foreign, "s"), "s is not a Virga state file");
  std::vector<uint8_t> newer = good;
  newer[8] = 99;
  EXPECT_THROWS_WITH(StateFile::Parse(newer, "s"), "s has state format 99; this virga-vmm reads format 2");
  EXPECT_THROWS_WITH(StateFile::Parse({}, "s"), "not a Virga state file");
}

TEST("byte reader: a count larger than what is left cannot make it allocate") {
  ByteWriter w;
  w.U32(0xffffffffu);
  ByteReader r(w.data().data(), w.data().size(), "x");
  EXPECT_THROWS_WITH(r.ByteVector(), "x is truncated or corrupt");
}

TEST("crc32c: the standard check value") {
  const char* text = "123456789";
  EXPECT_EQ(Crc32c(text, 9), 0xe3069283u);
}

TEST("memory file: touched pages round-trip through a private mapping; untouched ones are holes") {
  GuestMemory source(8 << 20, 1ULL << 32);
  uint64_t magic = 0x1122334455667788ULL;
  source.WriteObj(5 << 20, magic);
  std::string path = "/tmp/virga-memfile-" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
  uint64_t written = WriteMemoryFile(fd, source);
  EXPECT_TRUE(written < (1 << 20));  // one touched page, not 8 MiB
  std::vector<FileRegion> layout = ReadMemoryFileLayout(fd, path);
  GuestMemory restored(8 << 20, 1ULL << 32, std::make_unique<SnapshotBacking>(fd, layout));
  uint64_t read = 0;
  restored.ReadObj(5 << 20, &read);
  EXPECT_EQ(read, magic);
  // Writes stay private: the file keeps the snapshot's bytes.
  restored.WriteObj<uint64_t>(5 << 20, 1);
  GuestMemory again(8 << 20, 1ULL << 32, std::make_unique<SnapshotBacking>(fd, layout));
  again.ReadObj(5 << 20, &read);
  EXPECT_EQ(read, magic);
  // A reset's zeroing must give zeros, not the file's bytes back.
  restored.Zero(4 << 20, 2 << 20);
  restored.ReadObj(5 << 20, &read);
  EXPECT_EQ(read, 0u);
  // So must the balloon's: a page it gave back reads as zeros.
  again.Discard(5 << 20, 4096);
  again.ReadObj(5 << 20, &read);
  EXPECT_EQ(read, 0u);
  EXPECT_THROWS_WITH(GuestMemory(16 << 20, 1ULL << 32, std::make_unique<SnapshotBacking>(fd, layout)),
                     "does not match this machine's RAM layout");
  ::close(fd);
  ::unlink(path.c_str());
}

TEST("memory file: a foreign or truncated file is refused") {
  std::string path = "/tmp/virga-memfile-bad-" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
  [[maybe_unused]] ssize_t n = ::write(fd, "ELF\0\0\0\0\0", 8);
  EXPECT_THROWS_WITH(ReadMemoryFileLayout(fd, path), "is not a Virga memory file");
  GuestMemory source(4 << 20, 1ULL << 32);
  EXPECT_TRUE(::ftruncate(fd, 0) == 0);
  WriteMemoryFile(fd, source);
  EXPECT_TRUE(::ftruncate(fd, 1 << 20) == 0);
  EXPECT_THROWS_WITH(ReadMemoryFileLayout(fd, path), "is truncated");
  ::close(fd);
  ::unlink(path.c_str());
}

TEST("machine layout: every difference is named, a restore may give a NIC another wire MAC, a migration not") {
  MachineLayout saved;
  saved.memory_bytes = 256 << 20;
  saved.cpus = saved.max_cpus = 2;
  saved.sockets = 2;
  saved.cores = saved.threads = 1;
  saved.disks[1] = {true, 1 << 20, false};
  saved.nics[0].present = true;
  saved.nics[0].mac = saved.nics[0].wire_mac = {0x52, 0x56, 1, 2, 3, 0};
  ByteWriter w;
  saved.Encode(w);
  ByteReader r(w.data().data(), w.data().size(), "MACH");
  MachineLayout decoded = MachineLayout::Decode(r);
  MachineLayout same = decoded;
  for (auto& nic : same.nics) {
    nic.mac = {2, 0, 0, 0, 0, 0};
    nic.mac_given = false;
  }
  EXPECT_TRUE(LayoutDifferences(decoded, same).empty());
  MachineLayout other = same;
  other.memory_bytes = 128 << 20;
  other.cpus = 1;
  other.disks[1].present = false;
  other.nics[0].mac_given = true;
  auto diffs = LayoutDifferences(decoded, other);
  EXPECT_EQ(diffs.size(), 3u);
  EXPECT_TRUE(diffs[0].find("-smp:") == 0);
  EXPECT_TRUE(diffs[1] == "-m: the snapshot has 256 MiB, the command line 128 MiB");
  EXPECT_TRUE(diffs[2] == "block slot 1 (vdb): the snapshot has a 1 MiB disk, the command line no disk");
  // A migration's destination is the same VM on the network.
  auto migrating = LayoutDifferences(decoded, other, "the source", WireMac::kKept);
  EXPECT_EQ(migrating.size(), 4u);
  EXPECT_TRUE(migrating[3] ==
              "NIC slot 0 (eth0): the source has MAC 52:56:01:02:03:00 on the network, the command line gives "
              "02:00:00:00:00:00; leave mac= out to keep the source's");
}

TEST("machine layout: wire MACs are saved only when a NIC translates, and read back") {
  MachineLayout plain;
  plain.nics[0].present = true;
  plain.nics[0].mac = plain.nics[0].wire_mac = {0x52, 0x56, 1, 2, 3, 0};
  plain.nics[1].mac = plain.nics[1].wire_mac = {0x52, 0x56, 1, 2, 3, 1};
  ByteWriter a;
  plain.Encode(a);
  MachineLayout translating = plain;
  translating.nics[0].wire_mac = {0x52, 0x56, 9, 9, 9, 0};
  ByteWriter b;
  translating.Encode(b);
  // Without translation the section is what it always was.
  EXPECT_EQ(b.data().size(), a.data().size() + 6 * plain.nics.size());
  ByteReader ra(a.data().data(), a.data().size(), "MACH");
  MachineLayout read_plain = MachineLayout::Decode(ra);
  EXPECT_TRUE(read_plain.nics[1].wire_mac == plain.nics[1].mac);
  ByteReader rb(b.data().data(), b.data().size(), "MACH");
  MachineLayout read_translating = MachineLayout::Decode(rb);
  EXPECT_TRUE(read_translating.nics[0].mac == translating.nics[0].mac);
  EXPECT_TRUE(read_translating.nics[0].wire_mac == translating.nics[0].wire_mac);
  EXPECT_TRUE(read_translating.nics[1].wire_mac == translating.nics[1].mac);
  // Anything else after the balloon is still refused.
  b.U8(0);
  ByteReader rc(b.data().data(), b.data().size(), "MACH");
  bool refused = false;
  try {
    MachineLayout::Decode(rc);
  } catch (const StateError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
}

TEST("machine layout: q35 functions compared by address, kind, disk and MAC; another machine type named alone") {
  MachineLayout saved;
  saved.machine = "q35";
  MachineLayout::PciFunction disk;
  disk.slot = 3;
  disk.driver = "virtio-blk-pci";
  disk.id = "disk0";
  disk.disk = {true, 1 << 20, false};
  MachineLayout::PciFunction nic;
  nic.slot = 4;
  nic.driver = "virtio-net-pci";
  nic.nic.present = true;
  nic.nic.mac = {0x52, 0x56, 1, 2, 3, 4};
  saved.pci = {disk, nic};
  ByteWriter w;
  saved.Encode(w);
  ByteReader r(w.data().data(), w.data().size(), "MACH");
  MachineLayout decoded = MachineLayout::Decode(r);
  MachineLayout same = decoded;
  same.pci[1].nic.mac = {2, 0, 0, 0, 0, 0};
  same.pci[1].nic.mac_given = false;
  EXPECT_TRUE(LayoutDifferences(decoded, same).empty());

  MachineLayout other = decoded;
  other.pci[0].slot = 5;                      // the disk elsewhere
  other.pci[1].driver = "virtio-balloon-pci";  // another kind at 0x4.0
  other.pci[1].nic.present = false;
  auto diffs = LayoutDifferences(decoded, other);
  EXPECT_EQ(diffs.size(), 3u);
  EXPECT_TRUE(diffs[0] == "pcie.0 addr 0x3.0: the snapshot has virtio-blk-pci 'disk0' (a 1 MiB disk), the command line nothing");
  EXPECT_TRUE(diffs[1] == "pcie.0 addr 0x4.0: the snapshot has virtio-net-pci, the command line virtio-balloon-pci");
  EXPECT_TRUE(diffs[2] == "pcie.0 addr 0x5.0: the snapshot has nothing, the command line virtio-blk-pci 'disk0' (a 1 MiB disk)");

  MachineLayout mac = decoded;
  mac.pci[1].nic.mac = {0x52, 0x56, 9, 9, 9, 9};
  diffs = LayoutDifferences(decoded, mac, "the source");
  EXPECT_EQ(diffs.size(), 1u);
  EXPECT_TRUE(diffs[0].find("pcie.0 addr 0x4.0: the source's guest has MAC 52:56:01:02:03:04") == 0);

  MachineLayout microvm;
  diffs = LayoutDifferences(decoded, microvm);
  EXPECT_TRUE(diffs == std::vector<std::string>{"-machine: the snapshot is a q35, the command line a microvm"});
}

TEST("machine layout: root ports and the functions in their slots travel after the rest, compared by port and address") {
  MachineLayout plain;
  plain.machine = "q35";
  MachineLayout::PciFunction disk;
  disk.slot = 3;
  disk.driver = "virtio-blk-pci";
  disk.disk = {true, 1 << 20, false};
  plain.pci = {disk};
  ByteWriter before;
  plain.Encode(before);

  MachineLayout saved = plain;
  MachineLayout::PciFunction port;
  port.slot = 2;
  port.driver = "pcie-root-port";
  port.id = "pcie.1";
  port.port = 1;
  MachineLayout::PciFunction behind = disk;
  behind.slot = 0;
  behind.id = "disk1";
  behind.behind_port = true;
  behind.port_slot = 2;
  behind.bus = "pcie.1";
  saved.pci = {disk, port, behind};
  ByteWriter w;
  saved.Encode(w);
  // Without root ports the bytes are those of a layout from before them, which this reader reads.
  ByteReader plain_reader(before.data().data(), before.data().size(), "MACH");
  EXPECT_EQ(MachineLayout::Decode(plain_reader).pci.size(), 1u);
  EXPECT_TRUE(std::equal(before.data().begin(), before.data().end(), w.data().begin()));
  ByteReader r(w.data().data(), w.data().size(), "MACH");
  MachineLayout decoded = MachineLayout::Decode(r);
  EXPECT_EQ(decoded.pci.size(), 3u);
  EXPECT_TRUE(LayoutDifferences(saved, decoded).empty());

  MachineLayout other = decoded;
  other.pci[1].port = 3;       // the root port's number
  other.pci.pop_back();        // nothing in its slot
  auto diffs = LayoutDifferences(decoded, other);
  EXPECT_EQ(diffs.size(), 2u);
  EXPECT_TRUE(diffs[0] ==
              "pcie.0 addr 0x2.0: the snapshot has pcie-root-port 'pcie.1' (port 1), the command line pcie-root-port "
              "'pcie.1' (port 3)");
  EXPECT_TRUE(diffs[1] ==
              "bus pcie.1 (the root port at pcie.0 addr 0x2.0) addr 0x0.0: the snapshot has virtio-blk-pci 'disk1' (a "
              "1 MiB disk), the command line nothing");
}

}  // namespace
}  // namespace virga::state
