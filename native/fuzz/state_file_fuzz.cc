// A snapshot's state file as a reader meets it (docs/snapshots.md):
// the container (state/state_file.cc, byte_stream.h), the machine layout
// (vm/machine_layout.cc), and each device's RestoreState: UART, i8042,
// RTC, and the virtio-mmio slots with their queues and devices, whose
// restored queues are then served from a guest image (fuzz_state.h). The
// CRC-32C is recomputed over the input so mutations reach past the
// checksum; the checksum check itself is a unit test's job.
#include <cstring>
#include <vector>

#include "fuzz_state.h"
#include "seeds.h"
#include "state/crc32c.h"
#include "state/state_file.h"

namespace {

using namespace virga;

std::vector<uint8_t> Sealed(std::vector<uint8_t> bytes) {
  if (bytes.size() >= 4) {
    uint32_t crc = state::Crc32c(bytes.data(), bytes.size() - 4);
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  }
  return bytes;
}

fuzz::Seeds MakeSeeds() { return {{"machine", fuzz::SeedStateFile()}}; }

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes = Sealed(std::vector<uint8_t>(data, data + size));
  fuzz::LoadImage(bytes);  // what restored queues point at
  state::StateFile file;
  try {
    file = state::StateFile::Parse(bytes, "fuzz");
  } catch (const state::StateError&) {
    return 0;
  }
  fuzz::RestoreSections(file);
  return 0;
}
