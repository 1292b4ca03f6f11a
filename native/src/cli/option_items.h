// QEMU-style option strings: "virtio-blk-device,drive=d0,id=v0". Items are
// separated by commas; ",," is a literal comma inside a value. The first item
// may be a bare value (the implied key: a driver name, a cpu count); later
// ones are key=value or bare switches ("server", "nowait").
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace virga::cli {

struct OptionItem {
  std::optional<std::string> key;  // none for a bare value
  std::string value;
};

std::vector<OptionItem> ParseItems(const std::string& text);
// on/off, and the true/false and yes/no that StratoVirt and QEMU also take.
std::optional<bool> ParseSwitch(const std::string& value);

}  // namespace virga::cli
