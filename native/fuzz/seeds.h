// Seed inputs, written by the harnesses themselves with the project's own
// encoders so they always match the formats: `VIRGA_FUZZ_SEEDS=<dir>
// <harness>` writes them to <dir> and exits (npm run fuzz -- --seeds
// refreshes the corpus in the repository this way).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace virga::fuzz {

using Seeds = std::vector<std::pair<std::string, std::vector<uint8_t>>>;

// Call from LLVMFuzzerInitialize: in seed mode, writes what `make` returns and exits.
template <typename Make>
void MaybeWriteSeeds(Make make) {
  const char* dir = std::getenv("VIRGA_FUZZ_SEEDS");
  if (dir == nullptr) return;
  for (const auto& [name, bytes] : make()) {
    std::string path = std::string(dir) + "/seed-" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      std::exit(1);
    }
    std::fclose(f);
  }
  std::exit(0);
}

// A guest RAM image under construction, plus the configuration bytes that
// FuzzedDataProvider takes from the input's end (last byte first).
class SeedImage {
 public:
  void Put(uint64_t at, const void* data, size_t len) {
    if (bytes_.size() < at + len) bytes_.resize(at + len);
    std::memcpy(bytes_.data() + at, data, len);
  }
  template <typename T>
  void Put(uint64_t at, T value) {
    Put(at, &value, sizeof(T));
  }
  void Desc(uint64_t table, uint16_t index, uint64_t address, uint32_t len, uint16_t flags, uint16_t next) {
    uint64_t at = table + 16ULL * index;
    Put<uint64_t>(at, address);
    Put<uint32_t>(at + 8, len);
    Put<uint16_t>(at + 12, flags);
    Put<uint16_t>(at + 14, next);
  }
  // Publishes `heads` in the available ring of a queue of `size` entries.
  void Avail(uint64_t ring, uint16_t size, const std::vector<uint16_t>& heads) {
    for (size_t i = 0; i < heads.size(); ++i) Put<uint16_t>(ring + 4 + 2 * (i % size), heads[i]);
    Put<uint16_t>(ring + 2, static_cast<uint16_t>(heads.size()));
  }
  // Configuration bytes in the order the harness consumes them.
  void Config(std::vector<uint8_t> consumed_in_order) { config_ = std::move(consumed_in_order); }
  std::vector<uint8_t> Finish() const {
    std::vector<uint8_t> out = bytes_;
    out.insert(out.end(), config_.rbegin(), config_.rend());
    return out;
  }

 private:
  std::vector<uint8_t> bytes_;
  std::vector<uint8_t> config_;
};

}  // namespace virga::fuzz

// libFuzzer's start-up hook, writing `make`'s seeds in seed mode.
#define VIRGA_FUZZ_SEEDS(make)                         \
  extern "C" int LLVMFuzzerInitialize(int*, char***) { \
    ::virga::fuzz::MaybeWriteSeeds(make);              \
    return 0;                                          \
  }
