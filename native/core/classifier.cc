// Classifier build (sweep per dimension, Zobrist-hashed class dedupe, group splitting under the
// memory budget) and the lookup kernels (scalar twin + AVX2 selected at run time). Design and
// invariants: classifier.h.
#include "core/classifier.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ZTB_X86 1
#endif

namespace ztb {

bool cpu_has_avx2() {
#if ZTB_X86
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
#else
  return false;
#endif
}

struct ClassifierKernels {
  using Group = Classifier::Group;

  // Scalar twin of the chunk kernel: the reference for the SIMD path.
  template <bool kMasked>
  static uint32_t group_first_scalar(const Group& g, const uint64_t* const* cls, size_t nd,
                                     const uint64_t* dead) {
    for (uint32_t a = 0; a < g.n_agg; ++a) {
      uint64_t agg = cls[0][a];
      for (size_t i = 1; i < nd; ++i) agg &= cls[i][a];
      while (agg != 0) {
        const uint32_t c = a * 64 + static_cast<uint32_t>(std::countr_zero(agg));
        agg &= agg - 1;
        const size_t off = g.leaf_off + size_t{c} * 4;
        uint64_t w[4];
        for (int k = 0; k < 4; ++k) w[k] = cls[0][off + k];
        for (size_t i = 1; i < nd; ++i) {
          for (int k = 0; k < 4; ++k) w[k] &= cls[i][off + k];
        }
        if constexpr (kMasked) {
          const uint64_t* dm = dead + g.first / 64 + size_t{c} * 4;
          for (int k = 0; k < 4; ++k) w[k] &= ~dm[k];
        }
        for (uint32_t k = 0; k < 4; ++k) {
          if (w[k] != 0) return g.first + c * 256 + k * 64 + static_cast<uint32_t>(std::countr_zero(w[k]));
        }
      }
    }
    return kNoMatch;
  }

#if ZTB_X86
  template <bool kMasked>
  __attribute__((target("avx2"))) static uint32_t group_first_avx2(const Group& g,
                                                                   const uint64_t* const* cls,
                                                                   size_t nd, const uint64_t* dead) {
    for (uint32_t a = 0; a < g.n_agg; ++a) {
      uint64_t agg = cls[0][a];
      for (size_t i = 1; i < nd; ++i) agg &= cls[i][a];
      while (agg != 0) {
        const uint32_t c = a * 64 + static_cast<uint32_t>(std::countr_zero(agg));
        agg &= agg - 1;
        const size_t off = g.leaf_off + size_t{c} * 4;
        __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cls[0] + off));
        for (size_t i = 1; i < nd; ++i) {
          v = _mm256_and_si256(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cls[i] + off)));
        }
        if constexpr (kMasked) {
          const __m256i dm = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(dead + g.first / 64 + size_t{c} * 4));
          v = _mm256_andnot_si256(dm, v);
        }
        if (_mm256_testz_si256(v, v)) continue;
        const int zero_lanes =
            _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(v, _mm256_setzero_si256())));
        const uint32_t k = static_cast<uint32_t>(std::countr_zero(static_cast<unsigned>(~zero_lanes & 0xF)));
        alignas(32) uint64_t lanes[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
        return g.first + c * 256 + k * 64 + static_cast<uint32_t>(std::countr_zero(lanes[k]));
      }
    }
    return kNoMatch;
  }
#endif

  // First set position in chunk c of the AND of the classes, or kNoMatch.
  template <size_t ND>
  static uint32_t chunk_first_scalar(const Group& g, const uint64_t* const* cls, size_t nd_rt, uint32_t c) {
    const size_t nd = ND != 0 ? ND : nd_rt;
    const size_t off = g.leaf_off + size_t{c} * 4;
    uint64_t w[4];
    for (int k = 0; k < 4; ++k) w[k] = cls[0][off + k];
    for (size_t i = 1; i < nd; ++i) {
      for (int k = 0; k < 4; ++k) w[k] &= cls[i][off + k];
    }
    for (uint32_t k = 0; k < 4; ++k) {
      if (w[k] != 0) return g.first + c * 256 + k * 64 + static_cast<uint32_t>(std::countr_zero(w[k]));
    }
    return kNoMatch;
  }
#if ZTB_X86
  template <size_t ND>
  __attribute__((target("avx2"))) static uint32_t chunk_first_avx2(const Group& g, const uint64_t* const* cls,
                                                                   size_t nd_rt, uint32_t c) {
    const size_t nd = ND != 0 ? ND : nd_rt;
    const size_t off = g.leaf_off + size_t{c} * 4;
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cls[0] + off));
    for (size_t i = 1; i < nd; ++i) {
      v = _mm256_and_si256(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cls[i] + off)));
    }
    if (_mm256_testz_si256(v, v)) return kNoMatch;
    const int zero_lanes =
        _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(v, _mm256_setzero_si256())));
    const uint32_t k = static_cast<uint32_t>(std::countr_zero(static_cast<unsigned>(~zero_lanes & 0xF)));
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
    return g.first + c * 256 + k * 64 + static_cast<uint32_t>(std::countr_zero(lanes[k]));
  }
#endif
  template <size_t ND>
  static uint32_t chunk_first(bool avx2, const Group& g, const uint64_t* const* cls, size_t nd, uint32_t c) {
#if ZTB_X86
    if (avx2) return chunk_first_avx2<ND>(g, cls, nd, c);
#endif
    return chunk_first_scalar<ND>(g, cls, nd, c);
  }

  template <bool kMasked>
  static uint32_t group_first(bool avx2, const Group& g, const uint64_t* const* cls, size_t nd,
                              const uint64_t* dead) {
#if ZTB_X86
    if (avx2) return group_first_avx2<kMasked>(g, cls, nd, dead);
#endif
    return group_first_scalar<kMasked>(g, cls, nd, dead);
  }

  static void classes(const Group& g, const uint32_t* key, const uint64_t** cls) {
    const size_t nd = g.dims.size();
    for (size_t i = 0; i < nd; ++i) {
      const Classifier::Dim& d = g.dims[i];
      cls[i] = d.bits.data() + size_t{d.class_of(key[d.dim])} * g.stride;
    }
  }

  // ND > 0: the dimension count of group 0 at compile time; ND == 0: read at run time.
  template <size_t ND>
  static void batch(const Classifier& self, const uint32_t* keys, size_t n, uint32_t* out) {
  // Software pipeline over a block of packets, so the cache misses of different packets overlap:
  //   A: every class lookup of the block, prefetching each class's first line (its aggregate);
  //   B: AND the first aggregate word, pick the first candidate chunk, prefetch that chunk;
  //   C: AND the chunk. A packet whose candidate chunk is empty (aggregate false positive), whose
  //      rules span several aggregate words, or that misses group 0 takes the general path.
  constexpr size_t kBlock = 16;
  constexpr uint32_t kSlow = 0xFFFFFFFFu;
  const Group& g0 = self.groups_[0];
  const size_t nd = ND != 0 ? ND : g0.dims.size();
  const size_t stride_keys = static_cast<size_t>(self.n_dims_);
  const uint64_t* cls[kBlock][kMaxDims];
  uint32_t chunk[kBlock];
  for (size_t base = 0; base < n; base += kBlock) {
    const size_t m = std::min(kBlock, n - base);
    for (size_t i = 0; i < nd; ++i) {
      const Classifier::Dim& d = g0.dims[i];
      for (size_t p = 0; p < m; ++p) {
        const uint32_t v = keys[(base + p) * stride_keys + d.dim];
        const uint64_t* ptr = d.bits.data() + size_t{d.class_of(v)} * g0.stride;
        __builtin_prefetch(ptr);
        cls[p][i] = ptr;
      }
    }
    for (size_t p = 0; p < m; ++p) {
      uint64_t agg = cls[p][0][0];
      for (size_t i = 1; i < nd; ++i) agg &= cls[p][i][0];
      if (agg == 0 || g0.n_agg != 1) {
        chunk[p] = kSlow;
        continue;
      }
      const uint32_t c = static_cast<uint32_t>(std::countr_zero(agg));
      chunk[p] = c;
      for (size_t i = 0; i < nd; ++i) __builtin_prefetch(cls[p][i] + g0.leaf_off + size_t{c} * 4);
    }
    for (size_t p = 0; p < m; ++p) {
      uint32_t pos = kNoMatch;
      if (chunk[p] != kSlow) pos = chunk_first<ND>(self.avx2_, g0, cls[p], nd, chunk[p]);
      if (pos == kNoMatch && (chunk[p] != kSlow || g0.n_agg != 1 || self.groups_.size() > 1)) {
        // General path: the whole of group 0 again (cheap: its lines are cached), then the rest.
        const uint32_t* key = keys + (base + p) * stride_keys;
        pos = group_first<false>(self.avx2_, g0, cls[p], nd, nullptr);
        const uint64_t* c2[kMaxDims];
        for (size_t gi = 1; gi < self.groups_.size() && pos == kNoMatch; ++gi) {
          classes(self.groups_[gi], key, c2);
          pos = group_first<false>(self.avx2_, self.groups_[gi], c2, self.groups_[gi].dims.size(), nullptr);
        }
      }
      out[base + p] = pos == kNoMatch ? kNoMatch : self.values_[pos];
    }
  }
}
};

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr uint32_t kMaxU32 = 0xFFFFFFFFu;

// Advances an interval index to the interval of v (v never decreases between calls).
uint32_t advance(const Classifier::Dim& d, uint32_t iv, uint64_t v) {
  const uint32_t m = static_cast<uint32_t>(d.bounds.size());
  while (iv + 1 < m && d.bounds[iv + 1] <= v) ++iv;
  return iv;
}

// Entry for the values [lo, hi] (hi - lo + 1 == 2^shift) whose interval starts at index a: a class
// id when the class is constant there, a short search when at most four intervals meet, else a
// child node of min(8, shift) bits. Slots are visited in increasing order, so interval indexes
// only move forward: building a level costs O(slots + bounds), not O(slots * log bounds).
uint32_t trie_entry(Classifier::Dim& d, uint32_t a, uint64_t lo, uint64_t hi, uint32_t shift) {
  const uint32_t b = advance(d, a, hi);
  bool same = true;
  for (uint32_t i = a + 1; i <= b && same; ++i) same = d.iv_class[i] == d.iv_class[a];
  if (same) return d.iv_class[a];
  if (b - a <= 3) return Classifier::Dim::kTagSearch | ((b - a) << 28) | a;
  // shift >= 8 here: shift is a multiple of 8 and a one-value slot has a constant class.
  const uint32_t s = 8;
  const uint32_t off = static_cast<uint32_t>(d.trie.size());
  d.trie.resize(d.trie.size() + (size_t{1} << s));
  const uint32_t sub = shift - s;
  uint32_t iv = a;
  for (uint64_t k = 0; k < (uint64_t{1} << s); ++k) {
    const uint64_t sub_lo = lo + (k << sub);
    iv = advance(d, iv, sub_lo);
    const uint32_t e = trie_entry(d, iv, sub_lo, sub_lo + (uint64_t{1} << sub) - 1, sub);
    d.trie[off + k] = e;
  }
  return Classifier::Dim::kTagChild | off;
}

void build_trie(Classifier::Dim& d) {
  d.span = static_cast<uint32_t>(std::bit_width(d.bounds.back()));
  // Root stride grows with the number of bounds (a 64-rule run must not pay for a 2^16 root).
  // The levels below take exactly 8 bits, so the root takes span - 8k bits for the k that brings
  // it closest to (not above) log2(bounds) + 2, never more than 16.
  const int want = std::clamp<int>(static_cast<int>(std::bit_width(d.bounds.size())) + 2, 4, 16);
  const int span = static_cast<int>(d.span);
  int root = span - 8 * std::max(0, (span - want + 7) / 8);
  if (root <= 0) root += 8;
  // Rounding the root up instead saves a dependent load per lookup; worth it while the table stays
  // within 16x of the bounds (not for 64-rule runs, whose root would dwarf their data).
  const int up = span - 8 * std::max(0, (span - want) / 8);
  if (up <= want + 4) root = up;
  d.root_bits = static_cast<uint32_t>(std::min(root, span));
  d.tail_class = d.iv_class.back();
  const uint32_t shift = d.span - d.root_bits;
  d.trie.assign(size_t{1} << d.root_bits, 0);
  uint32_t iv = 0;
  for (uint64_t j = 0; j < (uint64_t{1} << d.root_bits); ++j) {
    const uint64_t lo = j << shift;
    iv = advance(d, iv, lo);
    const uint32_t e = trie_entry(d, iv, lo, lo + (uint64_t{1} << shift) - 1, shift);
    d.trie[j] = e;
  }
  d.trie.shrink_to_fit();
}

// Builds the dimension tables of one group, or nullopt when they would exceed `limit` bytes.
std::optional<Classifier::Group> build_group(int n_dims, const std::vector<const BoxRule*>& rules,
                                             uint32_t first, uint32_t n, size_t limit) {
  Classifier::Group g;
  g.first = first;
  g.n_rules = n;
  g.n_chunks = (n + 255) / 256;
  g.n_agg = (g.n_chunks + 63) / 64;
  g.leaf_off = (g.n_agg + 3) / 4 * 4;
  g.stride = (g.leaf_off + 4 * g.n_chunks + 7) / 8 * 8;
  const size_t stride = g.stride;
  size_t bytes = 0;

  std::vector<uint64_t> zob(n);
  for (uint32_t i = 0; i < n; ++i) zob[i] = splitmix64(first + i);

  std::optional<Classifier::Dim> fallback;
  for (int d = 0; d < n_dims; ++d) {
    Classifier::Dim dim;
    dim.dim = d;
    std::vector<std::pair<uint32_t, uint32_t>> starts, ends;
    starts.reserve(n);
    ends.reserve(n);
    dim.bounds.push_back(0);
    for (uint32_t i = 0; i < n; ++i) {
      const Range r = rules[first + i]->dims[d];
      starts.emplace_back(r.lo, i);
      dim.bounds.push_back(r.lo);
      if (r.hi != kMaxU32) {
        ends.emplace_back(r.hi + 1, i);
        dim.bounds.push_back(r.hi + 1);
      }
    }
    std::sort(dim.bounds.begin(), dim.bounds.end());
    dim.bounds.erase(std::unique(dim.bounds.begin(), dim.bounds.end()), dim.bounds.end());
    std::sort(starts.begin(), starts.end());
    std::sort(ends.begin(), ends.end());

    std::vector<uint64_t> cur(stride, 0);
    uint64_t hash = 0;
    std::unordered_multimap<uint64_t, uint32_t> seen;
    size_t si = 0, ei = 0;
    dim.iv_class.reserve(dim.bounds.size());
    for (uint32_t b : dim.bounds) {
      // A rule cannot start and end at the same bound (lo < hi + 1), so the order of the two
      // event kinds at one bound does not matter.
      for (; ei < ends.size() && ends[ei].first == b; ++ei) {
        const uint32_t i = ends[ei].second;
        cur[g.leaf_off + i / 64] &= ~(uint64_t{1} << (i % 64));
        hash ^= zob[i];
      }
      for (; si < starts.size() && starts[si].first == b; ++si) {
        const uint32_t i = starts[si].second;
        cur[g.leaf_off + i / 64] |= uint64_t{1} << (i % 64);
        hash ^= zob[i];
      }
      uint32_t cls = kMaxU32;
      auto range = seen.equal_range(hash);
      for (auto it = range.first; it != range.second; ++it) {
        if (std::memcmp(dim.bits.data() + size_t{it->second} * stride + g.leaf_off,
                        cur.data() + g.leaf_off, size_t{g.n_chunks} * 32) == 0) {
          cls = it->second;
          break;
        }
      }
      if (cls == kMaxU32) {
        cls = dim.n_classes++;
        seen.emplace(hash, cls);
        // Invariant: aggregate bit c <=> chunk c non-zero.
        for (uint32_t a = 0; a < g.n_agg; ++a) cur[a] = 0;
        for (uint32_t c = 0; c < g.n_chunks; ++c) {
          const uint64_t* w = cur.data() + g.leaf_off + size_t{c} * 4;
          if ((w[0] | w[1] | w[2] | w[3]) != 0) cur[c / 64] |= uint64_t{1} << (c % 64);
        }
        dim.bits.insert(dim.bits.end(), cur.begin(), cur.end());
        if (bytes + dim.bits.size() * 8 > limit) return std::nullopt;
      }
      dim.iv_class.push_back(cls);
    }
    build_trie(dim);
    dim.bits.shrink_to_fit();

    const size_t dim_bytes = dim.bits.size() * 8 + (dim.bounds.size() + dim.iv_class.size() +
                                                    dim.trie.size()) * 4;
    if (dim.n_classes <= 1) {
      // Every rule is a wildcard here: the dimension cannot discriminate. Keep one in reserve in
      // case no dimension discriminates (then any key matches every rule of the group).
      if (!fallback) fallback = std::move(dim);
      continue;
    }
    bytes += dim_bytes;
    if (bytes > limit) return std::nullopt;
    g.dims.push_back(std::move(dim));
  }
  if (g.dims.empty()) g.dims.push_back(std::move(*fallback));
  // Most selective dimension first: its zeros end the AND early in for_each_match's scalar loops
  // and keep its (larger) tables hot.
  std::stable_sort(g.dims.begin(), g.dims.end(),
                   [](const Classifier::Dim& a, const Classifier::Dim& b) { return a.n_classes > b.n_classes; });
  return g;
}

size_t group_bytes(const Classifier::Group& g) {
  size_t b = sizeof(g);
  for (const Classifier::Dim& d : g.dims) {
    b += sizeof(d) + d.bits.capacity() * 8 +
         (d.bounds.capacity() + d.iv_class.capacity() + d.trie.capacity()) * 4;
  }
  return b;
}

}  // namespace

Result<Classifier> Classifier::build(int n_dims, std::span<const BoxRule> boxes,
                                     const ClassifierOptions& options) {
  if (n_dims < 1 || n_dims > kMaxDims) {
    return Status(Errc::kInvalidArgument, "classifier: n_dims must be 1.." + std::to_string(kMaxDims) +
                                              ", got " + std::to_string(n_dims));
  }
  if (boxes.size() > kMaxClassifierRules) {
    return Status(Errc::kLimit, "classifier: " + std::to_string(boxes.size()) + " boxes exceed the cap of " +
                                    std::to_string(kMaxClassifierRules));
  }
  if (options.max_group_rules < 256 || options.max_group_rules % 256 != 0) {
    return Status(Errc::kInvalidArgument, "classifier: max_group_rules must be a positive multiple of 256");
  }
  for (size_t i = 0; i < boxes.size(); ++i) {
    for (int d = 0; d < n_dims; ++d) {
      if (boxes[i].dims[d].lo > boxes[i].dims[d].hi) {
        return Status(Errc::kInvalidRule, "classifier: box " + std::to_string(i) + " dimension " +
                                              std::to_string(d) + " has lo > hi");
      }
    }
  }
  Classifier c;
  c.n_dims_ = n_dims;
  switch (options.simd) {
    case SimdLevel::kAuto: c.avx2_ = cpu_has_avx2(); break;
    case SimdLevel::kScalar: c.avx2_ = false; break;
    case SimdLevel::kAvx2:
      if (!cpu_has_avx2()) return Status(Errc::kUnsupported, "classifier: this CPU has no AVX2");
      c.avx2_ = true;
      break;
  }
  std::vector<uint32_t> order(boxes.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return boxes[a].priority < boxes[b].priority; });
  std::vector<const BoxRule*> rules(boxes.size());
  c.values_.resize(boxes.size());
  c.priorities_.resize(boxes.size());
  for (size_t p = 0; p < order.size(); ++p) {
    rules[p] = &boxes[order[p]];
    c.values_[p] = boxes[order[p]].value;
    c.priorities_[p] = boxes[order[p]].priority;
  }
  const uint32_t n = static_cast<uint32_t>(boxes.size());
  const double per_rule_budget = n == 0 ? 0.0 : static_cast<double>(options.memory_budget) / n;
  // Work list of [first, count) pieces in position order; a piece over its share of the budget is
  // halved (at a multiple of 256) and retried.
  std::vector<std::pair<uint32_t, uint32_t>> todo;
  for (uint32_t f = 0; f < n; f += options.max_group_rules) {
    todo.emplace_back(f, std::min(options.max_group_rules, n - f));
  }
  std::reverse(todo.begin(), todo.end());
  while (!todo.empty()) {
    auto [first, count] = todo.back();
    todo.pop_back();
    const size_t limit = count <= 256 ? SIZE_MAX : static_cast<size_t>(per_rule_budget * count);
    std::optional<Group> g = build_group(n_dims, rules, first, count, limit);
    if (!g) {
      const uint32_t half = (count / 2 + 255) / 256 * 256;
      todo.emplace_back(first + half, count - half);
      todo.emplace_back(first, half);
      continue;
    }
    c.groups_.push_back(std::move(*g));
  }
  if (c.memory_bytes() > options.memory_budget && n > 0) {
    return Status(Errc::kLimit, "classifier: tables need " + std::to_string(c.memory_bytes()) +
                                    " bytes, over the budget of " + std::to_string(options.memory_budget));
  }
  return c;
}

uint32_t Classifier::first_match(const uint32_t* key) const {
  const uint64_t* cls[kMaxDims];
  for (const Group& g : groups_) {
    ClassifierKernels::classes(g, key, cls);
    const uint32_t pos = ClassifierKernels::group_first<false>(avx2_, g, cls, g.dims.size(), nullptr);
    if (pos != kNoMatch) return values_[pos];
  }
  return kNoMatch;
}

uint32_t Classifier::first_match_position(const uint32_t* key, const uint64_t* dead) const {
  const uint64_t* cls[kMaxDims];
  for (const Group& g : groups_) {
    ClassifierKernels::classes(g, key, cls);
    const uint32_t pos = dead == nullptr
                             ? ClassifierKernels::group_first<false>(avx2_, g, cls, g.dims.size(), nullptr)
                             : ClassifierKernels::group_first<true>(avx2_, g, cls, g.dims.size(), dead);
    if (pos != kNoMatch) return pos;
  }
  return kNoMatch;
}

void Classifier::first_match_batch(const uint32_t* keys, size_t n, uint32_t* out) const {
  if (groups_.empty()) {
    for (size_t i = 0; i < n; ++i) out[i] = kNoMatch;
    return;
  }
  // The dimension count as a template argument lets the compiler unroll every per-dimension loop
  // of the pipeline (the engine uses about 8 dimensions, ClassBench 4-5 after wildcard dropping).
  switch (groups_[0].dims.size()) {
    case 1: return ClassifierKernels::batch<1>(*this, keys, n, out);
    case 2: return ClassifierKernels::batch<2>(*this, keys, n, out);
    case 3: return ClassifierKernels::batch<3>(*this, keys, n, out);
    case 4: return ClassifierKernels::batch<4>(*this, keys, n, out);
    case 5: return ClassifierKernels::batch<5>(*this, keys, n, out);
    case 6: return ClassifierKernels::batch<6>(*this, keys, n, out);
    case 7: return ClassifierKernels::batch<7>(*this, keys, n, out);
    case 8: return ClassifierKernels::batch<8>(*this, keys, n, out);
    default: return ClassifierKernels::batch<0>(*this, keys, n, out);
  }
}

size_t Classifier::memory_bytes() const {
  size_t b = sizeof(*this) + (values_.capacity() + priorities_.capacity()) * 4;
  for (const Group& g : groups_) b += group_bytes(g);
  return b;
}

std::vector<std::pair<int, uint32_t>> Classifier::class_counts(size_t g) const {
  std::vector<std::pair<int, uint32_t>> out;
  if (g >= groups_.size()) return out;
  for (const Dim& d : groups_[g].dims) out.emplace_back(d.dim, d.n_classes);
  return out;
}

Status Classifier::check_invariants() const {
  auto fail = [](const std::string& m) { return Status(Errc::kInvalidArgument, "classifier invariant: " + m); };
  if (values_.size() != priorities_.size()) return fail("values/priorities size mismatch");
  for (size_t p = 1; p < priorities_.size(); ++p) {
    if (priorities_[p - 1] > priorities_[p]) return fail("priorities not sorted at " + std::to_string(p));
  }
  uint32_t next = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const Group& g = groups_[gi];
    const std::string gs = "group " + std::to_string(gi) + ": ";
    if (g.first != next || g.first % 256 != 0) return fail(gs + "does not tile positions");
    if (g.n_rules == 0) return fail(gs + "empty");
    next += g.n_rules;
    if (g.n_chunks != (g.n_rules + 255) / 256 || g.n_agg != (g.n_chunks + 63) / 64 || g.leaf_off < g.n_agg ||
        g.leaf_off % 4 != 0 || g.stride != (g.leaf_off + 4 * g.n_chunks + 7) / 8 * 8) {
      return fail(gs + "bad geometry");
    }
    if (g.dims.empty()) return fail(gs + "no dimension");
    for (const Dim& d : g.dims) {
      const std::string ds = gs + "dim " + std::to_string(d.dim) + ": ";
      if (d.dim < 0 || d.dim >= n_dims_) return fail(ds + "index out of range");
      if (d.bounds.empty() || d.bounds[0] != 0) return fail(ds + "bounds must start at 0");
      for (size_t i = 1; i < d.bounds.size(); ++i) {
        if (d.bounds[i - 1] >= d.bounds[i]) return fail(ds + "bounds not strictly increasing");
      }
      if (d.iv_class.size() != d.bounds.size()) return fail(ds + "interval/class size mismatch");
      for (uint32_t cl : d.iv_class) {
        if (cl >= d.n_classes) return fail(ds + "interval maps to a missing class");
      }
      if (d.span > 32 || d.root_bits > d.span || (d.span - d.root_bits) % 8 != 0 ||
          d.trie.size() < (size_t{1} << d.root_bits)) {
        return fail(ds + "bad trie geometry");
      }
      for (uint32_t e : d.trie) {
        const uint32_t tag = e >> 30;
        if (tag == 3 || (tag == 0 && e >= d.n_classes) || (tag == 1 && (e & 0x3FFFFFFFu) >= d.trie.size()) ||
            (tag == 2 && (e & 0x0FFFFFFFu) + ((e >> 28) & 3) >= d.bounds.size())) {
          return fail(ds + "trie entry out of range");
        }
      }
      for (size_t i = 0; i < d.bounds.size(); ++i) {
        if (d.class_of(d.bounds[i]) != d.iv_class[i] || (i > 0 && d.class_of(d.bounds[i] - 1) != d.iv_class[i - 1])) {
          return fail(ds + "trie disagrees with the intervals at bound " + std::to_string(d.bounds[i]));
        }
      }
      if (d.class_of(0xFFFFFFFFu) != d.iv_class.back()) return fail(ds + "trie disagrees at the top value");
      if (d.bits.size() != size_t{d.n_classes} * g.stride) return fail(ds + "bit table size");
      for (uint32_t cl = 0; cl < d.n_classes; ++cl) {
        const uint64_t* w = d.bits.data() + size_t{cl} * g.stride;
        for (uint32_t c = 0; c < g.n_chunks; ++c) {
          const uint64_t* leaf = w + g.leaf_off + size_t{c} * 4;
          const bool nz = (leaf[0] | leaf[1] | leaf[2] | leaf[3]) != 0;
          const bool agg = ((w[c / 64] >> (c % 64)) & 1) != 0;
          if (nz != agg) return fail(ds + "aggregate bit disagrees with chunk");
        }
        for (uint32_t a = g.n_agg; a < g.leaf_off; ++a) {
          if (w[a] != 0) return fail(ds + "aggregate padding not zero");
        }
        if (g.n_chunks % 64 != 0 && (w[g.n_agg - 1] >> (g.n_chunks % 64)) != 0) {
          return fail(ds + "aggregate bits past the last chunk");
        }
        for (uint32_t bit = g.n_rules; bit < g.n_chunks * 256; ++bit) {
          if ((w[g.leaf_off + bit / 64] >> (bit % 64)) & 1) return fail(ds + "bit set past the rule count");
        }
      }
      if (d.n_classes <= 512 && g.stride <= 256) {
        // Classes are distinct (dedupe worked); quadratic, so only on small tables.
        for (uint32_t a = 0; a < d.n_classes; ++a) {
          for (uint32_t b = a + 1; b < d.n_classes; ++b) {
            if (std::memcmp(d.bits.data() + size_t{a} * g.stride, d.bits.data() + size_t{b} * g.stride,
                            g.stride * 8) == 0) {
              return fail(ds + "duplicate classes");
            }
          }
        }
      }
    }
  }
  if (next != values_.size()) return fail("groups do not cover every position");
  return Status::ok();
}

}  // namespace ztb
