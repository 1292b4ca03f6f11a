// A small AML (ACPI Machine Language, ACPI 6.x chapter 20) encoder: just
// the terms the microvm DSDT needs (names, devices, scopes, packages,
// integers, strings and resource templates).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace virga::acpi {

using Bytes = std::vector<uint8_t>;

// NameString for "\\_SB_", "COM1", "_HID" ...; segments shorter than 4 are padded with '_'.
Bytes NameString(const std::string& path);
Bytes Integer(uint64_t value);
Bytes String(const std::string& value);
// "PNP0501" -> the 32-bit compressed EISA id integer.
Bytes EisaId(const std::string& id);
Bytes Name(const std::string& name, const Bytes& value);
Bytes Package(const std::vector<Bytes>& elements);
Bytes Buffer(const Bytes& contents);
Bytes Device(const std::string& name, const std::vector<Bytes>& body);
Bytes Scope(const std::string& name, const std::vector<Bytes>& body);
Bytes Method(const std::string& name, uint8_t arg_count, const std::vector<Bytes>& body);
Bytes Notify(const std::string& object, uint64_t value);
// Return (ArgN): a method's answer is its argument N (0-6).
Bytes ReturnArg(uint8_t index);

// Resource descriptors, to be wrapped by ResourceTemplate.
Bytes Memory32Fixed(uint32_t base, uint32_t length, bool writable);
Bytes ExtendedInterrupt(uint32_t gsi, bool edge, bool active_low, bool shared);
Bytes Io(uint16_t base, uint8_t length);
Bytes IrqNoFlags(uint8_t irq);
// Windows a bridge passes on to its children (min..max inclusive).
Bytes WordBusNumber(uint16_t min, uint16_t max);
Bytes WordIo(uint16_t min, uint16_t max);
Bytes DWordMemory(uint32_t min, uint32_t max);
Bytes ResourceTemplate(const std::vector<Bytes>& descriptors);

// PkgLength encoding (20.2.4) of a body of `body_length` bytes, counting itself.
Bytes PkgLength(size_t body_length);

}  // namespace virga::acpi
