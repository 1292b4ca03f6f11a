// A tiny test registry for the native unit tests: plain C++, no KVM, no
// Node. The binary lists its tests (--list) and runs one by name (--run),
// so the project's Node test runner reports each as its own test.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace virga::test {

struct TestCase {
  std::string name;
  std::function<void()> body;
};

std::vector<TestCase>& Registry();

// Polls for up to 5 s, for what another thread does.
inline bool WaitUntil(const std::function<bool()>& condition) {
  for (int i = 0; i < 500; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Runs `body` in a forked child whose address space may grow by only
// `spare` bytes more, and returns its exit code (-1: killed by a signal):
// for fixes that keep an allocation from following a size the input claims.
inline int ExitCodeWithSpareAddressSpace(size_t spare, const std::function<int()>& body) {
  pid_t child = ::fork();
  if (child == 0) {
    long pages = 0;
    FILE* statm = std::fopen("/proc/self/statm", "r");
    if (statm == nullptr || std::fscanf(statm, "%ld", &pages) != 1) ::_exit(90);
    std::fclose(statm);
    rlimit limit{};
    limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(pages) * ::sysconf(_SC_PAGESIZE) + spare;
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(91);
    ::_exit(body());
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

struct Registrar {
  Registrar(const char* name, std::function<void()> body) { Registry().push_back({name, std::move(body)}); }
};

class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace virga::test

#define VIRGA_CONCAT2(a, b) a##b
#define VIRGA_CONCAT(a, b) VIRGA_CONCAT2(a, b)
#define TEST(name)                                                                                   \
  static void VIRGA_CONCAT(test_body_, __LINE__)();                                                  \
  static ::virga::test::Registrar VIRGA_CONCAT(test_registrar_, __LINE__)(name, VIRGA_CONCAT(test_body_, __LINE__)); \
  static void VIRGA_CONCAT(test_body_, __LINE__)()

#define EXPECT_TRUE(cond)                                                                     \
  do {                                                                                        \
    if (!(cond)) throw ::virga::test::Failure(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #cond); \
  } while (0)

#define EXPECT_EQ(a, b)                                                                                  \
  do {                                                                                                   \
    auto va = (a);                                                                                       \
    auto vb = (b);                                                                                       \
    if (!(va == vb)) {                                                                                   \
      std::ostringstream out;                                                                            \
      out << __FILE__ << ":" << __LINE__ << ": " #a " == " #b " (" << +va << " vs " << +vb << ")";     \
      throw ::virga::test::Failure(out.str());                                                           \
    }                                                                                                    \
  } while (0)

#define EXPECT_THROWS_WITH(expr, text)                                                                        \
  do {                                                                                                        \
    bool threw = false;                                                                                       \
    try {                                                                                                     \
      expr;                                                                                                   \
    } catch (const std::exception& e) {                                                                       \
      threw = true;                                                                                           \
      if (std::string(e.what()).find(text) == std::string::npos)                                              \
        throw ::virga::test::Failure(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": message '" + \
                                     e.what() + "' lacks '" + text + "'");                                     \
    }                                                                                                         \
    if (!threw) throw ::virga::test::Failure(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": no exception"); \
  } while (0)
