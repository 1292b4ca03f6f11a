// Plain little-endian encoding for saved state: a writer that appends and a
// reader that bounds-checks every read, so a truncated or hostile state file
// is an error naming where it broke, never a read past the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace virga::state {

class StateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ByteWriter {
 public:
  void Bytes(const void* data, size_t len) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + len);
  }
  // Fixed-layout kernel structs (kvm_regs...) and integers, as laid out in
  // memory: snapshots are restored on the same architecture.
  template <typename T>
  void Pod(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>, "plain data only");
    Bytes(&value, sizeof(T));
  }
  void U8(uint8_t v) { Pod(v); }
  void U16(uint16_t v) { Pod(v); }
  void U32(uint32_t v) { Pod(v); }
  void U64(uint64_t v) { Pod(v); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void String(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  void ByteVector(const std::vector<uint8_t>& v) {
    U32(static_cast<uint32_t>(v.size()));
    Bytes(v.data(), v.size());
  }

  const std::vector<uint8_t>& data() const { return out_; }
  std::vector<uint8_t>& data() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

class ByteReader {
 public:
  // `what` names the data in errors ("section VCPU").
  ByteReader(const uint8_t* data, size_t len, std::string what) : data_(data), len_(len), what_(std::move(what)) {}

  void Bytes(void* out, size_t len) {
    if (len > len_ - pos_) {
      throw StateError(what_ + " is truncated (needs " + std::to_string(pos_ + len) + " bytes, has " +
                       std::to_string(len_) + ")");
    }
    // An empty string or vector has no buffer: memcpy must not see its null pointer.
    if (len != 0) std::memcpy(out, data_ + pos_, len);
    pos_ += len;
  }
  void Skip(size_t len) {
    if (len > len_ - pos_) throw StateError(what_ + " is truncated");
    pos_ += len;
  }
  size_t position() const { return pos_; }
  template <typename T>
  T Pod() {
    static_assert(std::is_trivially_copyable_v<T>, "plain data only");
    T value;
    Bytes(&value, sizeof(T));
    return value;
  }
  uint8_t U8() { return Pod<uint8_t>(); }
  uint16_t U16() { return Pod<uint16_t>(); }
  uint32_t U32() { return Pod<uint32_t>(); }
  uint64_t U64() { return Pod<uint64_t>(); }
  bool Bool() {
    uint8_t v = U8();
    if (v > 1) throw StateError(what_ + ": a flag holds " + std::to_string(v));
    return v == 1;
  }
  std::string String() {
    uint32_t n = Count(1);
    std::string s(n, '\0');
    Bytes(s.data(), n);
    return s;
  }
  std::vector<uint8_t> ByteVector() {
    uint32_t n = Count(1);
    std::vector<uint8_t> v(n);
    Bytes(v.data(), n);
    return v;
  }
  // A count of items of at least `item_size` bytes each, checked against
  // what is left, so a corrupt count cannot make the reader allocate wildly.
  uint32_t Count(size_t item_size) {
    uint32_t n = U32();
    if (item_size != 0 && n > (len_ - pos_) / item_size) {
      throw StateError(what_ + " is truncated or corrupt (a count of " + std::to_string(n) + ")");
    }
    return n;
  }
  size_t remaining() const { return len_ - pos_; }
  // The whole input was read: trailing bytes mean a layout this reader does not know.
  void ExpectEnd() const {
    if (pos_ != len_) throw StateError(what_ + " has " + std::to_string(len_ - pos_) + " unexpected trailing bytes");
  }
  const std::string& what() const { return what_; }

 private:
  const uint8_t* data_;
  size_t len_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace virga::state
