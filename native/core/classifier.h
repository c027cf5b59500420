// Classifier: sub-linear multi-field first-match lookup over box rules (core/box.h contract).
//
// API: `static Result<Classifier> Classifier::build(int n_dims, std::span<const BoxRule>,
// ClassifierOptions = {})` returns a movable, immutable value. Lookups: first_match(key),
// for_each_match(key, min_priority, f), first_match_batch(keys, n, out), memory_bytes(),
// check_invariants(). Results are identical to LinearClassifier (the oracle), ties included.
//
// What: a bit-vector classifier in the family of Lakshman–Stiliadis "Bit Vector" and its
// aggregated variant (ABV, Baboescu–Varghese), with the per-dimension lookup done by a small
// two-level table instead of a trie. Rules are sorted by (priority, input order); that order is a
// rule's *position*, and bit p of every bit vector below means "rule at position p".
//
// Representation, per dimension d (built independently):
//   * bounds: the sorted distinct starts of elementary intervals: 0, every lo, every hi+1. The
//     interval containing v is the last bound <= v. Every rule either fully contains an
//     elementary interval or misses it, so all values of one interval match the same rules.
//   * intervals are folded into *classes*: intervals whose rule sets are equal share one class
//     (hash + memcmp dedupe). A class stores the rule set as a leaf bit vector (one bit per rule,
//     padded to 256-bit chunks) plus an aggregate vector (bit c = "chunk c is non-zero").
//   * value -> class goes through a small multibit trie over the dimension's used bit span (root
//     stride about log2(bounds) + 2, at most 16, chosen so the rest of the span splits into 8-bit
//     levels) whose entries are class ids; a slot
//     whose class is not constant becomes a child node, or, when it holds at most four
//     intervals, a 1-2 step binary search over the bounds. Values past the span take the class
//     of the last interval.
//   * a dimension in which every rule is a wildcard has one class and is dropped from the lookup.
// Lookup: map each active dimension to its class (O(1) table + a tiny search), AND the aggregate
// words, take the lowest set aggregate bit, AND that 256-bit chunk across dimensions (AVX2 when the
// CPU has it, a scalar twin otherwise — chosen at run time), and the lowest set bit is the first
// match; a zero chunk (aggregate false positive) moves to the next aggregate bit. for_each_match
// walks the set bits upward from the position of min_priority.
// Memory: sum over dims of n_classes * (n_rules / 8) bytes. Large sets are split into *groups* of
// consecutive positions (multiples of 256 rules), each with its own dimension tables, so the
// quadratic term stays under ClassifierOptions::memory_budget; lookups visit groups in order and
// first_match stops at the first group that matches.
//
// Worked example (2 dims: dst port, proto; three rules in priority order):
//   r0: port 80..80  proto 6     r1: port 0..1023 proto *     r2: port *  proto 17
//   port bounds: 0, 80, 81, 1024 -> intervals [0,79] [80,80] [81,1023] [1024,max]
//     rule sets (bit0=r0): {r1,r2}=110b  {r0,r1,r2}=111b  {r1,r2}=110b  {r2}=100b
//     classes: A=110b (intervals 0 and 2 share it), B=111b, C=100b
//   proto bounds: 0, 6, 7, 17, 18 -> rule sets {r1} {r0,r1} {r1} {r1,r2} {r1} -> classes
//     D=010b, E=011b, F=110b
//   packet (port 80, proto 17): port -> interval 1 -> B=111b; proto -> interval 3 -> F=110b;
//   aggregates 1 & 1 = 1 -> chunk 0: 111b & 110b = 110b -> lowest set bit 1 -> r1 matches first.
//   for_each_match(min_priority = priority of r2) starts at bit 2 and reports only r2.
//
// Invariants (check_invariants() verifies them; tests call it after every build):
//   * bounds[0] == 0, strictly increasing; every interval maps to a valid class; class_of(v)
//     equals the class of v's interval at every bound b and b - 1 (classes are constant between
//     bounds, so that covers every value).
//   * a class's aggregate bit c is set iff its chunk c is non-zero; bits past the group's rule
//     count are zero; classes within a dimension are distinct.
//   * positions are sorted by (priority, input order); groups tile [0, n_rules) in order and
//     start at multiples of 256.
// Complexity: build O(D * (R log R + I * R / 64)) for R rules, I intervals; lookup
//   O(D * trie depth (<= 4)) + O(D) per aggregate bit visited; memory as above.
// Thread-safety: immutable after build(); any number of threads may look up concurrently.
#pragma once

#include <bit>
#include <new>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/box.h"
#include "core/status.h"

namespace ztb {

// Cache-line aligned storage for the class bit vectors: with strides padded to 8 words, a class's
// aggregate word and its first leaf chunk share one line and no chunk straddles two.
template <class T>
struct CacheAligned {
  using value_type = T;
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) {}  // NOLINT: allocator rebinding
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const CacheAligned<U>&) const { return true; }
};

enum class SimdLevel { kAuto, kScalar, kAvx2 };

// True when this CPU can run the AVX2 lookup path.
bool cpu_has_avx2();

struct ClassifierOptions {
  // Cap on the bit-vector tables; groups are split until each fits its share of it.
  size_t memory_budget = size_t{64} << 20;
  // Upper bound on rules per group (multiple of 256). Smaller groups = less memory, slower misses.
  uint32_t max_group_rules = 16384;
  SimdLevel simd = SimdLevel::kAuto;
};

// Caps on input sizes (strict validation: the binding and the bench reject larger inputs).
constexpr size_t kMaxClassifierRules = 1u << 22;

class Classifier {
 public:
  Classifier() = default;
  Classifier(Classifier&&) noexcept = default;
  Classifier& operator=(Classifier&&) noexcept = default;
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  static Result<Classifier> build(int n_dims, std::span<const BoxRule> boxes,
                                  const ClassifierOptions& options = {});

  // Readers: lock-free, wait-free, no allocation.
  uint32_t first_match(const uint32_t* key) const;
  // keys: n * n_dims() words (packet i at keys + i * n_dims()); out: n values.
  void first_match_batch(const uint32_t* keys, size_t n, uint32_t* out) const;
  // Position (0-based index in priority order) of the first match whose position's bit is clear
  // in `dead` (a bitmap over positions of at least dead_words() words; may be null), or kNoMatch.
  // Used by UpdatableClassifier for tombstones.
  uint32_t first_match_position(const uint32_t* key, const uint64_t* dead) const;

  template <class F>
  void for_each_match(const uint32_t* key, uint32_t min_priority, F&& f) const {
    for_each_position(key, min_priority, [&](uint32_t pos) { return f(priorities_[pos], values_[pos]); });
  }
  // Same walk, reporting positions: f(pos) -> bool (false stops).
  template <class F>
  void for_each_position(const uint32_t* key, uint32_t min_priority, F&& f) const;

  size_t memory_bytes() const;
  Status check_invariants() const;

  int n_dims() const { return n_dims_; }
  size_t size() const { return values_.size(); }
  size_t n_groups() const { return groups_.size(); }
  size_t dead_words() const { return (values_.size() + 255) / 256 * 4; }
  SimdLevel simd() const { return avx2_ ? SimdLevel::kAvx2 : SimdLevel::kScalar; }
  uint32_t value_at(uint32_t pos) const { return values_[pos]; }
  uint32_t priority_at(uint32_t pos) const { return priorities_[pos]; }
  // Diagnostic: classes per active dimension in group g (dimension index, class count).
  std::vector<std::pair<int, uint32_t>> class_counts(size_t g) const;

  // Internal layout, public only so the out-of-line SIMD kernels can read it.
  struct Dim {
    int dim = 0;                   // index into the key
    uint32_t span = 0;             // every bound is < 2^span
    uint32_t root_bits = 0;        // stride of the root node; later nodes take exactly 8 bits
    uint32_t tail_class = 0;       // class of values >= 2^span
    // Multibit trie over [0, 2^span): entry tag (top two bits) 00 = class id, 01 = child node
    // offset, 10 = "search": interval lo in bits 0..27 and hi - lo (1..3) in bits 28..29.
    std::vector<uint32_t> trie;
    std::vector<uint32_t> bounds;  // interval starts
    std::vector<uint32_t> iv_class;
    std::vector<uint64_t, CacheAligned<uint64_t>> bits;  // n_classes * stride words
    uint32_t n_classes = 0;

    static constexpr uint32_t kTagChild = 1u << 30;
    static constexpr uint32_t kTagSearch = 2u << 30;

    uint32_t class_of(uint32_t v) const {
      if (span < 32 && (v >> span) != 0) return tail_class;
      uint32_t shift = span - root_bits;
      uint32_t e = trie[v >> shift];
      // Invariant: span - root_bits is a multiple of 8, so every level below the root is 8 bits.
      while ((e >> 30) == 1) {
        shift -= 8;
        e = trie[(e & 0x3FFFFFFFu) + ((v >> shift) & 0xFFu)];
      }
      if ((e >> 30) == 0) return e;
      uint32_t lo = e & 0x0FFFFFFFu, hi = lo + ((e >> 28) & 3);
      // Invariant: bounds[lo] <= v; the interval of v lies in [lo, hi].
      while (lo < hi) {
        const uint32_t mid = (lo + hi + 1) >> 1;
        if (bounds[mid] <= v) lo = mid; else hi = mid - 1;
      }
      return iv_class[lo];
    }
  };
  struct Group {
    uint32_t first = 0;      // first position (multiple of 256)
    uint32_t n_rules = 0;
    uint32_t n_chunks = 0;   // 256-bit leaf chunks
    uint32_t n_agg = 0;      // aggregate words: ceil(n_chunks / 64)
    uint32_t leaf_off = 0;   // n_agg rounded up to 4 words, so leaf chunks stay 32-byte aligned
    uint32_t stride = 0;     // words per class: leaf_off + 4 * n_chunks, rounded up to 8
    std::vector<Dim> dims;   // active dimensions only (at least one)
  };

 private:
  friend struct ClassifierKernels;
  int n_dims_ = 0;
  bool avx2_ = false;
  std::vector<uint32_t> values_;      // by position
  std::vector<uint32_t> priorities_;  // by position, non-decreasing
  std::vector<Group> groups_;
};

template <class F>
void Classifier::for_each_position(const uint32_t* key, uint32_t min_priority, F&& f) const {
  // First position with priority >= min_priority.
  uint32_t lo = 0, hi = static_cast<uint32_t>(priorities_.size());
  while (lo < hi) {
    uint32_t mid = (lo + hi) >> 1;
    if (priorities_[mid] < min_priority) lo = mid + 1; else hi = mid;
  }
  const uint32_t start = lo;
  const uint64_t* cls[kMaxDims];
  for (const Group& g : groups_) {
    if (g.first + g.n_rules <= start) continue;
    const size_t nd = g.dims.size();
    for (size_t i = 0; i < nd; ++i) {
      const Dim& d = g.dims[i];
      cls[i] = d.bits.data() + size_t{d.class_of(key[d.dim])} * g.stride;
    }
    const uint32_t local_start = start > g.first ? start - g.first : 0;
    for (uint32_t a = local_start / 16384; a < g.n_agg; ++a) {
      uint64_t agg = ~uint64_t{0};
      for (size_t i = 0; i < nd; ++i) agg &= cls[i][a];
      while (agg != 0) {
        const uint32_t c = a * 64 + static_cast<uint32_t>(std::countr_zero(agg));
        agg &= agg - 1;
        for (uint32_t w = 0; w < 4; ++w) {
          const uint32_t word = c * 4 + w;
          uint64_t m = ~uint64_t{0};
          for (size_t i = 0; i < nd; ++i) m &= cls[i][g.leaf_off + word];
          const uint32_t base = word * 64;
          if (base + 64 <= local_start) continue;
          if (base < local_start) m &= ~uint64_t{0} << (local_start - base);
          while (m != 0) {
            const uint32_t pos = g.first + base + static_cast<uint32_t>(std::countr_zero(m));
            m &= m - 1;
            if (!f(pos)) return;
          }
        }
      }
    }
  }
}

}  // namespace ztb
