// Snapshots on disk (docs/snapshots.md): `<dir>/state` and `<dir>/memory`,
// written under a temporary name beside `<dir>` and renamed into place, so
// a failure at any point leaves nothing behind and never a half snapshot.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/fd.h"
#include "state/state_file.h"
#include "vm/machine.h"

namespace virga {

struct SnapshotSizes {
  uint64_t state_bytes;
  uint64_t memory_bytes;  // data written (pages never touched are holes)
};

// The machine must be paused. Throws VmmError naming what failed (the
// parent directory missing, `dir` already there, disk full...).
SnapshotSizes WriteSnapshot(Machine& machine, const std::string& dir, const std::string& vmm_version);

// A snapshot opened for restore; `source()` is what Machine takes.
class OpenedSnapshot {
 public:
  explicit OpenedSnapshot(const std::string& dir);
  RestoreSource source() const { return {dir_, &state_, memory_.get(), layout_}; }

 private:
  std::string dir_;
  state::StateFile state_;
  UniqueFd memory_;
  std::vector<FileRegion> layout_;
};

}  // namespace virga
