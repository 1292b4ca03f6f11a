#include "arch/x86_64/acpi/aml.h"

#include <stdexcept>

namespace virga::acpi {

namespace {
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kNotifyOp = 0x86;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;
constexpr uint8_t kRootChar = 0x5c;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;

void Append(Bytes* out, const Bytes& more) { out->insert(out->end(), more.begin(), more.end()); }

void AppendLe(Bytes* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<uint8_t>(value >> (8 * i)));
}

Bytes Concat(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const auto& p : parts) Append(&out, p);
  return out;
}

// Opcode(s), PkgLength, then the body.
Bytes WithPkgLength(const Bytes& opcode, const Bytes& body) {
  Bytes out = opcode;
  Append(&out, PkgLength(body.size()));
  Append(&out, body);
  return out;
}
}  // namespace

Bytes PkgLength(size_t body_length) {
  // One byte holds up to 63; otherwise 1-3 follow-on bytes, and the count
  // includes the PkgLength bytes themselves.
  if (body_length + 1 < 0x40) return {static_cast<uint8_t>(body_length + 1)};
  for (int extra = 1; extra <= 3; ++extra) {
    size_t total = body_length + 1 + extra;
    if (total < (1ULL << (4 + 8 * extra))) {
      Bytes out;
      out.push_back(static_cast<uint8_t>((extra << 6) | (total & 0x0f)));
      for (int i = 0; i < extra; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
      return out;
    }
  }
  throw std::length_error("AML package too long");
}

Bytes NameString(const std::string& path) {
  Bytes out;
  std::string rest = path;
  if (!rest.empty() && rest[0] == '\\') {
    out.push_back(kRootChar);
    rest = rest.substr(1);
  }
  std::vector<std::string> segments;
  size_t start = 0;
  while (start <= rest.size() && !rest.empty()) {
    size_t dot = rest.find('.', start);
    std::string seg = rest.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (seg.empty() || seg.size() > 4) throw std::invalid_argument("bad AML name segment: " + seg);
    seg.resize(4, '_');
    segments.push_back(seg);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (segments.size() == 2) out.push_back(kDualNamePrefix);
  if (segments.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segments.size()));
  }
  for (const auto& seg : segments) out.insert(out.end(), seg.begin(), seg.end());
  if (segments.empty()) out.push_back(0);  // NullName
  return out;
}

Bytes Integer(uint64_t value) {
  Bytes out;
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    AppendLe(&out, value, 1);
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    AppendLe(&out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    AppendLe(&out, value, 4);
  } else {
    out.push_back(kQWordPrefix);
    AppendLe(&out, value, 8);
  }
  return out;
}

Bytes String(const std::string& value) {
  Bytes out{kStringPrefix};
  out.insert(out.end(), value.begin(), value.end());
  out.push_back(0);
  return out;
}

Bytes EisaId(const std::string& id) {
  if (id.size() != 7) throw std::invalid_argument("EISA id must be 7 characters: " + id);
  auto hex = [](char c) -> uint32_t { return static_cast<uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10); };
  uint32_t value = ((static_cast<uint32_t>(id[0] - '@') & 0x1f) << 26) |
                   ((static_cast<uint32_t>(id[1] - '@') & 0x1f) << 21) |
                   ((static_cast<uint32_t>(id[2] - '@') & 0x1f) << 16) | (hex(id[3]) << 12) | (hex(id[4]) << 8) |
                   (hex(id[5]) << 4) | hex(id[6]);
  // Stored big-endian within the little-endian DWord, as the spec's EISAID() macro does.
  uint32_t swapped = ((value & 0xff) << 24) | ((value & 0xff00) << 8) | ((value >> 8) & 0xff00) | (value >> 24);
  Bytes out{kDWordPrefix};
  AppendLe(&out, swapped, 4);
  return out;
}

Bytes Name(const std::string& name, const Bytes& value) {
  Bytes out{kNameOp};
  Append(&out, NameString(name));
  Append(&out, value);
  return out;
}

Bytes Package(const std::vector<Bytes>& elements) {
  Bytes body{static_cast<uint8_t>(elements.size())};
  Append(&body, Concat(elements));
  return WithPkgLength({kPackageOp}, body);
}

Bytes Buffer(const Bytes& contents) {
  Bytes body = Integer(contents.size());
  Append(&body, contents);
  return WithPkgLength({kBufferOp}, body);
}

Bytes Device(const std::string& name, const std::vector<Bytes>& body) {
  Bytes inner = NameString(name);
  Append(&inner, Concat(body));
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, inner);
}

Bytes Scope(const std::string& name, const std::vector<Bytes>& body) {
  Bytes inner = NameString(name);
  Append(&inner, Concat(body));
  return WithPkgLength({kScopeOp}, inner);
}

Bytes ReturnArg(uint8_t index) {
  constexpr uint8_t kReturnOp = 0xa4, kArg0Op = 0x68;
  return {kReturnOp, static_cast<uint8_t>(kArg0Op + index)};
}

Bytes Method(const std::string& name, uint8_t arg_count, const std::vector<Bytes>& body) {
  Bytes inner = NameString(name);
  inner.push_back(static_cast<uint8_t>(arg_count & 0x7));  // not serialized, sync level 0
  Append(&inner, Concat(body));
  return WithPkgLength({kMethodOp}, inner);
}

Bytes Notify(const std::string& object, uint64_t value) {
  Bytes out{kNotifyOp};
  Append(&out, NameString(object));
  Append(&out, Integer(value));
  return out;
}

Bytes Memory32Fixed(uint32_t base, uint32_t length, bool writable) {
  Bytes out{0x86, 0x09, 0x00, static_cast<uint8_t>(writable ? 1 : 0)};
  AppendLe(&out, base, 4);
  AppendLe(&out, length, 4);
  return out;
}

Bytes ExtendedInterrupt(uint32_t gsi, bool edge, bool active_low, bool shared) {
  uint8_t flags = static_cast<uint8_t>(0x01 /* consumer */ | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0) |
                                       (shared ? 0x08 : 0));
  Bytes out{0x89, 0x06, 0x00, flags, 0x01};
  AppendLe(&out, gsi, 4);
  return out;
}

Bytes Io(uint16_t base, uint8_t length) {
  Bytes out{0x47, 0x01};
  AppendLe(&out, base, 2);
  AppendLe(&out, base, 2);
  out.push_back(0x01);
  out.push_back(length);
  return out;
}

Bytes IrqNoFlags(uint8_t irq) {
  Bytes out{0x22};
  AppendLe(&out, 1u << irq, 2);
  return out;
}

namespace {

// Word and DWord Address Space Descriptors (6.4.3.5.2-3) of a window a
// bridge produces: fixed minimum and maximum, positive decode, no
// translation.
Bytes AddressSpace(uint8_t tag, int width, uint8_t type, uint8_t type_flags, uint64_t min, uint64_t max) {
  uint16_t length = static_cast<uint16_t>(3 + 5 * width);
  Bytes out{tag, static_cast<uint8_t>(length), static_cast<uint8_t>(length >> 8), type, 0x0c, type_flags};
  for (uint64_t field : {uint64_t{0}, min, max, uint64_t{0}, max - min + 1}) AppendLe(&out, field, width);
  return out;
}

}  // namespace

Bytes WordBusNumber(uint16_t min, uint16_t max) { return AddressSpace(0x88, 2, 0x02, 0x00, min, max); }

// Type-specific 0x03: the window covers ISA and non-ISA ranges alike.
Bytes WordIo(uint16_t min, uint16_t max) { return AddressSpace(0x88, 2, 0x01, 0x03, min, max); }

// Type-specific 0x01: read-write, not cacheable (device registers).
Bytes DWordMemory(uint32_t min, uint32_t max) { return AddressSpace(0x87, 4, 0x00, 0x01, min, max); }

Bytes ResourceTemplate(const std::vector<Bytes>& descriptors) {
  Bytes contents = Concat(descriptors);
  // End tag; a zero checksum byte means "treat as valid".
  contents.push_back(0x79);
  contents.push_back(0x00);
  return Buffer(contents);
}

}  // namespace virga::acpi
