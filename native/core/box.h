// Box rules: the common currency between the rule compiler and every classifier.
//
// What: a rule over n_dims unsigned 32-bit dimensions, each an inclusive range [lo, hi]. Anything
// the engine matches on is mapped onto such dimensions before it reaches a classifier: an IPv4
// prefix is one range; an IPv6 prefix is four 32-bit dimensions (words fully inside the prefix
// are exact, the word the prefix ends in is a range, the rest are wildcards — a prefix is a box);
// a port operator is one range or, for `!=` / `<>`, two boxes; a negated prefix or table becomes
// the boxes of its complement. So one policy rule may become several boxes sharing one priority.
//
// Representation: BoxRule{priority, value, dims[]}. Lower priority = preferred (ClassBench line 1
// has priority 0). `value` is opaque user data returned by lookups (the engine's rule index; the
// ClassBench bench's 0-based line number). Several boxes may share a priority and value.
//
// The classifier contract (every implementation, fast or slow, provides these, with identical
// results — the linear scan in linear.h is the oracle):
//   uint32_t first_match(const uint32_t* key) const
//       value of the lowest-priority box containing key (ties: the box given first), or kNoMatch.
//   template <class F> void for_each_match(const uint32_t* key, uint32_t min_priority, F&& f) const
//       calls f(priority, value) for every box containing key with priority >= min_priority, in
//       ascending priority order (ties in insertion order); stops early when f returns false.
//   size_t memory_bytes() const
//
// Thread-safety: a built classifier is immutable; any number of readers may look up concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

namespace ztb {

constexpr uint32_t kNoMatch = std::numeric_limits<uint32_t>::max();
constexpr int kMaxDims = 16;

struct Range {
  uint32_t lo = 0;
  uint32_t hi = std::numeric_limits<uint32_t>::max();
  bool contains(uint32_t v) const { return lo <= v && v <= hi; }
  bool is_wildcard() const { return lo == 0 && hi == std::numeric_limits<uint32_t>::max(); }
};

struct BoxRule {
  uint32_t priority = 0;
  uint32_t value = 0;
  Range dims[kMaxDims];

  bool contains(const uint32_t* key, int n_dims) const {
    for (int d = 0; d < n_dims; ++d) {
      if (!dims[d].contains(key[d])) return false;
    }
    return true;
  }
};

}  // namespace ztb
