// One parser per flag: each turns its argument into part of a VmmConfig or
// throws a UsageError naming the flag. Pure: no file system access (files are
// checked by ValidateFiles once the whole command line has parsed).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cli/vmm_config.h"

namespace virga::cli {

struct FlagSpec {
  enum class Arity { kNone, kValue, kOptional };
  std::string flag;    // as typed, with its dash: "-smp"
  std::string syntax;  // shown in errors and -help
  Arity arity;
  bool repeatable;  // -drive and -device
  std::string help;
  // Applies the argument (nullopt for a switch or an omitted optional value).
  std::function<void(const std::optional<std::string>& value, VmmConfig& config)> apply;
};

// Every flag, in the order -help lists them.
const std::vector<FlagSpec>& AllFlags();
const FlagSpec* FindFlag(const std::string& name);

Smp ParseSmp(const std::string& text);
uint64_t ParseMemory(const std::string& text);
Drive ParseDrive(const std::string& text);
Device ParseDevice(const std::string& text);
Netdev ParseNetdev(const std::string& text);
// addr=<slot>[.<function>] of a PCI device; nullopt when it is not that form.
std::optional<PciAddress> ParsePciAddress(const std::string& text);
std::string FormatPciAddress(const PciAddress& addr);
Serial ParseSerial(const std::string& text);
Qmp ParseQmp(const std::string& text);

extern const char kDriveSyntax[];
extern const char kDeviceSyntax[];
extern const char kNetdevSyntax[];
extern const char kKernelSyntax[];
extern const char kInitrdSyntax[];
extern const char kMemPathSyntax[];
std::string FormatDrive(const Drive& drive);
std::string FormatDevice(const Device& device);
std::string FormatNetdev(const Netdev& netdev);

}  // namespace virga::cli
