// The container of a VM's saved state (docs/snapshots.md): a magic, the
// format version, the VMM's version, tagged sections, and a CRC-32C over
// all of it. Snapshots (`<dir>/state`) and live migration's final message
// both carry one. A file that is truncated, corrupt or of another format
// is refused with the reason.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "state/byte_stream.h"

namespace virga::state {

constexpr char kStateMagic[8] = {'V', 'I', 'R', 'G', 'A', 'S', 'T', 'A'};
// Bumped whenever a section's layout changes; a reader refuses others.
constexpr uint32_t kStateFormat = 2;

class StateFileWriter {
 public:
  // Sections keep their order; a tag may repeat (one VCPU section per vCPU).
  void Section(const std::string& tag, const ByteWriter& payload);
  std::vector<uint8_t> Finish(const std::string& vmm_version) const;

 private:
  std::vector<std::pair<std::string, std::vector<uint8_t>>> sections_;
};

class StateFile {
 public:
  // `name` says where the bytes came from, for errors ("/snap/state").
  static StateFile Parse(std::vector<uint8_t> bytes, const std::string& name);

  const std::string& vmm_version() const { return vmm_version_; }
  // The n-th section with this tag; throws naming the tag when missing.
  ByteReader Section(const std::string& tag, size_t n = 0) const;
  size_t Count(const std::string& tag) const;

 private:
  struct Entry {
    std::string tag;
    size_t offset, len;
  };
  std::vector<uint8_t> bytes_;
  std::string name_;
  std::string vmm_version_;
  std::vector<Entry> sections_;
};

}  // namespace virga::state
