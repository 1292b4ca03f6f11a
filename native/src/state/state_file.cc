#include "state/state_file.h"

#include "state/crc32c.h"

namespace virga::state {

void StateFileWriter::Section(const std::string& tag, const ByteWriter& payload) {
  sections_.emplace_back(tag, payload.data());
}

std::vector<uint8_t> StateFileWriter::Finish(const std::string& vmm_version) const {
  ByteWriter out;
  out.Bytes(kStateMagic, sizeof(kStateMagic));
  out.U32(kStateFormat);
  out.String(vmm_version);
  out.U32(static_cast<uint32_t>(sections_.size()));
  for (const auto& [tag, payload] : sections_) {
    out.String(tag);
    out.ByteVector(payload);
  }
  uint32_t crc = Crc32c(out.data().data(), out.data().size());
  out.U32(crc);
  return out.data();
}

StateFile StateFile::Parse(std::vector<uint8_t> bytes, const std::string& name) {
  StateFile file;
  file.bytes_ = std::move(bytes);
  file.name_ = name;
  const std::vector<uint8_t>& b = file.bytes_;
  if (b.size() < sizeof(kStateMagic) || std::memcmp(b.data(), kStateMagic, sizeof(kStateMagic)) != 0) {
    throw StateError(name + " is not a Virga state file (no VIRGASTA magic)");
  }
  if (b.size() < sizeof(kStateMagic) + 8) throw StateError(name + " is truncated");
  uint32_t stored_crc;
  std::memcpy(&stored_crc, b.data() + b.size() - 4, 4);
  ByteReader header(b.data(), b.size() - 4, name);
  char magic[8];
  header.Bytes(magic, sizeof(magic));
  uint32_t format = header.U32();
  if (format != kStateFormat) {
    throw StateError(name + " has state format " + std::to_string(format) + "; this virga-vmm reads format " +
                     std::to_string(kStateFormat));
  }
  // The checksum covers everything before it: a short file fails it too.
  if (Crc32c(b.data(), b.size() - 4) != stored_crc) {
    throw StateError(name + " is corrupt or truncated (checksum mismatch)");
  }
  file.vmm_version_ = header.String();
  uint32_t count = header.Count(8);
  for (uint32_t i = 0; i < count; ++i) {
    std::string tag = header.String();
    uint32_t len = header.Count(1);
    file.sections_.push_back({tag, header.position(), len});
    header.Skip(len);
  }
  header.ExpectEnd();
  return file;
}

ByteReader StateFile::Section(const std::string& tag, size_t n) const {
  size_t seen = 0;
  for (const Entry& e : sections_) {
    if (e.tag != tag) continue;
    if (seen++ == n) return ByteReader(bytes_.data() + e.offset, e.len, name_ + ": section " + tag);
  }
  throw StateError(name_ + " has no section " + tag + (n ? " #" + std::to_string(n) : ""));
}

size_t StateFile::Count(const std::string& tag) const {
  size_t n = 0;
  for (const Entry& e : sections_) n += e.tag == tag;
  return n;
}

}  // namespace virga::state
