// A tiny test framework for the C++ core test binary (no dependency to install): TEST(name)
// registers a test; CHECK/CHECK_EQ record failures with file:line and keep going; main() in
// test_main.cc runs every test (or those whose name contains argv[1]) and prints
// `native: N passed, N failed` as its last line, which scripts/test.mjs adds to the total.
#pragma once

#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace ztb::testing {

struct TestCase {
  const char* name;
  void (*fn)();
};

std::vector<TestCase>& registry();
int& current_failures();

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

template <class A, class B>
void check_eq(const A& a, const B& b, const char* as, const char* bs, const char* file, int line) {
  if (!(a == b)) {
    std::ostringstream os;
    os << file << ":" << line << ": CHECK_EQ(" << as << ", " << bs << ") failed: " << a << " vs " << b;
    std::fprintf(stderr, "%s\n", os.str().c_str());
    ++current_failures();
  }
}

}  // namespace ztb::testing

#define ZTB_TEST_CONCAT2(a, b) a##b
#define ZTB_TEST_CONCAT(a, b) ZTB_TEST_CONCAT2(a, b)
#define TEST(name)                                                                   \
  static void name();                                                                \
  static ::ztb::testing::Registrar ZTB_TEST_CONCAT(reg_, name)(#name, &name);         \
  static void name()

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);  \
      ++::ztb::testing::current_failures();                                          \
    }                                                                                \
  } while (0)

#define CHECK_EQ(a, b) ::ztb::testing::check_eq((a), (b), #a, #b, __FILE__, __LINE__)
