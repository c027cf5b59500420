// Runs every registered core test. Built with ASan/UBSan (and LeakSanitizer) by
// scripts/native-tests.mjs; a sanitizer report makes the binary exit non-zero.
#include <cstring>

#include "test/testing.h"

namespace ztb::testing {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> r;
  return r;
}
int& current_failures() {
  static int n = 0;
  return n;
}
}  // namespace ztb::testing

int main(int argc, char** argv) {
  using namespace ztb::testing;
  int passed = 0, failed = 0;
  for (const TestCase& t : registry()) {
    if (argc > 1 && std::strstr(t.name, argv[1]) == nullptr) continue;
    current_failures() = 0;
    t.fn();
    if (current_failures() == 0) {
      ++passed;
    } else {
      ++failed;
      std::fprintf(stderr, "FAIL %s (%d checks)\n", t.name, current_failures());
    }
  }
  std::printf("native: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
