// Random box sets and keys for classifier tests: per-dimension profiles (tiny domains that force
// overlaps, full 32-bit with points, prefixes and ranges), wildcards, duplicate priorities, and
// keys drawn from rule corners (lo, hi, lo-1, hi+1) as well as uniformly. Seeded: the seed is
// printed per test and ZTB_SEED replays it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/box.h"

namespace ztb::testing {

class RandomBoxes {
 public:
  explicit RandomBoxes(const char* test_name) {
    const char* env = std::getenv("ZTB_SEED");
    seed_ = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::fprintf(stderr, "%s: seed %llu (replay with ZTB_SEED=%llu)\n", test_name,
                 static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    rng_.seed(seed_);
  }

  uint64_t below(uint64_t n) { return n == 0 ? 0 : std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  uint32_t u32() { return static_cast<uint32_t>(rng_()); }

  std::vector<BoxRule> boxes(int n_dims, size_t n) {
    profiles_.assign(n_dims, 0);
    for (int d = 0; d < n_dims; ++d) profiles_[d] = static_cast<int>(below(3));
    const bool dup_prio = below(2) == 0;
    std::vector<BoxRule> out(n);
    for (size_t i = 0; i < n; ++i) {
      BoxRule& b = out[i];
      b.priority = dup_prio ? static_cast<uint32_t>(below(n / 2 + 1)) : static_cast<uint32_t>(i * 3 + below(3));
      b.value = static_cast<uint32_t>(below(4) == 0 ? below(n / 3 + 1) : i);
      for (int d = 0; d < n_dims; ++d) b.dims[d] = range(profiles_[d]);
    }
    return out;
  }

  std::vector<uint32_t> key(const std::vector<BoxRule>& boxes, int n_dims) {
    std::vector<uint32_t> k(n_dims);
    if (!boxes.empty() && below(4) != 0) {
      const BoxRule& b = boxes[below(boxes.size())];
      for (int d = 0; d < n_dims; ++d) {
        const Range r = b.dims[d];
        switch (below(5)) {
          case 0: k[d] = r.lo; break;
          case 1: k[d] = r.hi; break;
          case 2: k[d] = r.lo - 1; break;  // wraps at 0 on purpose: max is a corner too
          case 3: k[d] = r.hi + 1; break;
          default: k[d] = r.lo + static_cast<uint32_t>(below(uint64_t{r.hi} - r.lo + 1)); break;
        }
      }
    } else {
      for (int d = 0; d < n_dims; ++d) k[d] = d < static_cast<int>(profiles_.size()) && profiles_[d] == 0
                                                  ? static_cast<uint32_t>(below(70)) : u32();
    }
    return k;
  }

  uint32_t pick_priority(const std::vector<BoxRule>& boxes) {
    switch (below(4)) {
      case 0: return 0;
      case 1: return boxes.empty() ? 0 : boxes[below(boxes.size())].priority;
      case 2: return boxes.empty() ? 0 : boxes[below(boxes.size())].priority + 1;
      default: return static_cast<uint32_t>(below(3 * boxes.size() + 2));
    }
  }

  size_t stop_after() { return below(2) == 0 ? std::numeric_limits<size_t>::max() : 1 + below(5); }

 private:
  Range range(int profile) {
    constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
    const uint64_t pick = below(10);
    if (pick < 3) return Range{0, kMax};
    if (profile == 0) {  // tiny domain: heavy overlap
      uint32_t a = static_cast<uint32_t>(below(64)), b = static_cast<uint32_t>(below(64));
      if (pick < 5) return Range{a, a};
      if (a > b) std::swap(a, b);
      return Range{a, b};
    }
    if (pick < 5) {
      const uint32_t v = profile == 1 ? u32() : static_cast<uint32_t>(below(65536));
      return Range{v, v};
    }
    if (pick < 8) {  // prefix
      const int len = static_cast<int>(below(33));
      const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
      const uint32_t base = u32() & mask;
      return Range{base, base | ~mask};
    }
    uint32_t a = u32(), b = u32();
    if (profile == 2) { a &= 0xFFFF; b &= 0xFFFF; }
    if (a > b) std::swap(a, b);
    return Range{a, b};
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::vector<int> profiles_;
};

}  // namespace ztb::testing
