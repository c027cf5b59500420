// Linear classifier: the oracle. Scans boxes in priority order and tests every dimension. Slow and
// obviously correct; every fast classifier is tested against it, and the benchmark reports its
// rate as the baseline (Open vSwitch's `tcls` plays the same role for its classifier).
//
// Invariant: boxes_ is sorted by (priority, insertion order) — established by build().
// Thread-safety: immutable after build(); concurrent readers are safe.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "core/box.h"

namespace ztb {

class LinearClassifier {
 public:
  LinearClassifier() = default;
  LinearClassifier(int n_dims, std::span<const BoxRule> boxes) { build(n_dims, boxes); }

  void build(int n_dims, std::span<const BoxRule> boxes) {
    n_dims_ = n_dims;
    boxes_.assign(boxes.begin(), boxes.end());
    std::stable_sort(boxes_.begin(), boxes_.end(),
                     [](const BoxRule& a, const BoxRule& b) { return a.priority < b.priority; });
  }

  uint32_t first_match(const uint32_t* key) const {
    for (const BoxRule& b : boxes_) {
      if (b.contains(key, n_dims_)) return b.value;
    }
    return kNoMatch;
  }

  template <class F>
  void for_each_match(const uint32_t* key, uint32_t min_priority, F&& f) const {
    auto it = std::lower_bound(boxes_.begin(), boxes_.end(), min_priority,
                               [](const BoxRule& b, uint32_t p) { return b.priority < p; });
    for (; it != boxes_.end(); ++it) {
      if (it->contains(key, n_dims_) && !f(it->priority, it->value)) return;
    }
  }

  size_t memory_bytes() const { return boxes_.capacity() * sizeof(BoxRule); }
  size_t size() const { return boxes_.size(); }
  int n_dims() const { return n_dims_; }

 private:
  int n_dims_ = 0;
  std::vector<BoxRule> boxes_;
};

}  // namespace ztb
