#include <cstring>
#include <iostream>

#include "unit_test.h"

namespace virga::test {
std::vector<TestCase>& Registry() {
  static std::vector<TestCase> tests;
  return tests;
}
}  // namespace virga::test

int main(int argc, char** argv) {
  using virga::test::Registry;
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const auto& t : Registry()) std::cout << t.name << "\n";
    return 0;
  }
  const char* only = argc == 3 && std::strcmp(argv[1], "--run") == 0 ? argv[2] : nullptr;
  int passed = 0, failed = 0;
  for (const auto& t : Registry()) {
    if (only != nullptr && t.name != only) continue;
    try {
      t.body();
      ++passed;
      std::cout << "ok " << t.name << "\n";
    } catch (const std::exception& e) {
      ++failed;
      std::cout << "FAIL " << t.name << ": " << e.what() << "\n";
    }
  }
  if (only != nullptr && passed + failed == 0) {
    std::cout << "no test named " << only << "\n";
    return 2;
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
