#include "cli/option_items.h"

namespace virga::cli {

std::vector<OptionItem> ParseItems(const std::string& text) {
  std::vector<std::string> items;
  std::string current;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ',') {
      current += text[i];
    } else if (i + 1 < text.size() && text[i + 1] == ',') {
      current += ',';
      ++i;
    } else {
      items.push_back(current);
      current.clear();
    }
  }
  items.push_back(current);
  std::vector<OptionItem> out;
  for (const std::string& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos) {
      out.push_back({std::nullopt, item});
    } else {
      out.push_back({item.substr(0, eq), item.substr(eq + 1)});
    }
  }
  return out;
}

std::optional<bool> ParseSwitch(const std::string& value) {
  if (value == "on" || value == "true" || value == "yes") return true;
  if (value == "off" || value == "false" || value == "no") return false;
  return std::nullopt;
}

}  // namespace virga::cli
