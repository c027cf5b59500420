// UpdatableClassifier: the classifier with insert/erase at hundreds of thousands of updates per
// second while lookups continue on other threads, without ever exposing a half-built table.
//
// What: a log-structured merge over one published State:
//   * base: an immutable Classifier (classifier.h) built from a snapshot of the rules, plus a
//     tombstone bitmap over its positions (erased base rules: the lookup ANDs ~tombstones into the
//     leaf chunk, so a dead rule costs nothing extra);
//   * delta: an append-only arena of rules inserted since that snapshot, each with a dead flag.
//     Its prefix is covered by *runs* — small immutable Classifiers over contiguous arena ranges,
//     each with its own tombstones — built by the writer every kRunRules inserts and merged
//     binary-counter style (a run absorbs the next while it is at most twice its size), so a
//     lookup visits O(log delta) runs plus a linear tail of fewer than kRunRules entries.
// Each single update is one atomic store (a tombstone word fetch_or, a dead flag, or an arena count
// release-store after the entry is written), so a reader sees every update entirely or not at
// all; new runs are published by storing a new State that shares the base and the arena. When
// the arena reaches min(Options::rebuild_delta, half the base) entries or a quarter of the base
// is dead, a background thread builds a new base from a snapshot of the live rules; the writer
// replays what changed meanwhile (rules inserted after the snapshot form the new arena, rules
// erased meanwhile become tombstones) and publishes the new State with one atomic store ("swap,
// never half-apply"). Old States, bases and runs are freed by reference counting when the last
// reader that loaded them lets go (std::atomic<std::shared_ptr<State>>: a reader's load takes a
// reference, so nothing is freed under a reader — the RCU grace period is the reference count).
//
// Ordering: rules carry a sequence number (insertion order). Position order in the base is
// (priority, seq); every base rule's seq is smaller than every delta rule's; arena entries are in
// seq order and runs cover ascending arena ranges, so "lowest priority, then earliest inserted" —
// the box.h tie rule — is: take the base's first live match, then each run's, then the tail's, a
// later candidate replacing the current one only with a strictly lower priority.
//
// Worked example: base {r0 prio 0, r1 prio 5}; erase(r0) sets tombstone bit 0; insert(r2 prio 3)
// appends delta[0]. Key matching all three: base gives r1 (bit 0 masked), delta r2 has 3 < 5 ->
// r2. After the rebuild the base is {r1, r2} in positions (r2, r1), no tombstones, empty delta.
//
// Invariants (check_invariants()): every live rule has exactly one live location (a base
// position with a clear tombstone, or a delta entry not dead) holding its value; no dead or
// erased rule has a live location; the base classifier's own invariants hold.
// Complexity: insert O(log delta) amortised run builds (each rule is rebuilt into O(log delta)
// runs), erase O(1), + O(n) replay under the writer lock at a base swap; lookup = base lookup +
// O(log delta) run lookups + O(kRunRules) tail. for_each_match scans the arena linearly (not a hot
// path).
// Thread-safety: readers (first_match*, for_each_match) are lock-free with respect to the
// writer, apart from the brief internal lock std::atomic<std::shared_ptr> takes on load. Writers
// (insert, erase, flush) serialise on a mutex. Tombstone words are plain uint64_t updated with
// atomic RMW and read by the lookup kernels with plain (x86 single-copy atomic) loads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/box.h"
#include "core/classifier.h"
#include "core/status.h"

namespace ztb {

class UpdatableClassifier {
 public:
  static constexpr uint32_t kRunRules = 64;

  struct Options {
    ClassifierOptions classifier;
    // Arena size that triggers a background base rebuild: min(this, base size / 2), at least 256.
    uint32_t rebuild_delta = 4096;
    uint32_t delta_capacity = 65536; // per arena; when full the writer waits for / runs a rebuild
    bool background = true;          // false: base rebuilds run inline (deterministic tests)
  };
  struct Stats {
    uint64_t rebuilds = 0;
    uint64_t run_builds = 0;
    uint64_t max_delta = 0;
    uint64_t max_runs = 0;
    uint64_t live = 0;
  };

  static Result<std::unique_ptr<UpdatableClassifier>> create(int n_dims, std::span<const BoxRule> rules);
  static Result<std::unique_ptr<UpdatableClassifier>> create(int n_dims, std::span<const BoxRule> rules,
                                                             const Options& options);
  ~UpdatableClassifier();
  UpdatableClassifier(const UpdatableClassifier&) = delete;
  UpdatableClassifier& operator=(const UpdatableClassifier&) = delete;

  // Readers: any thread, concurrently with the writer.
  uint32_t first_match(const uint32_t* key) const;
  void first_match_batch(const uint32_t* keys, size_t n, uint32_t* out) const;
  // Calls f(priority, value) for every live match with priority >= min_priority in (priority,
  // insertion) order; stops when f returns false.
  template <class F>
  void for_each_match(const uint32_t* key, uint32_t min_priority, F&& f) const;

  // Writers: one at a time (internally serialised).
  Status insert(const BoxRule& rule);
  Status erase(uint32_t value);  // every box carrying `value`; kNotFound if none
  Status flush();                // finish any background rebuild and publish it
  Status check_invariants() const;
  Stats stats() const;
  size_t size() const;
  int n_dims() const { return n_dims_; }

 private:
  struct DeltaEntry {
    BoxRule rule;
    std::atomic<bool> dead{false};
  };
  struct Base {
    Classifier c;
    std::vector<uint32_t> value;        // by position: the user's value
    std::vector<uint64_t> seq;          // by position
    std::unique_ptr<uint64_t[]> dead;   // tombstones over positions
  };
  struct Arena {
    std::unique_ptr<DeltaEntry[]> e;
    uint32_t capacity = 0;
    std::atomic<uint32_t> size{0};
    std::vector<uint64_t> seq;          // writer-only: seq of each entry
  };
  struct Run {
    uint32_t start = 0, end = 0;        // arena range covered
    Classifier c;                       // box value = arena index
    std::vector<uint32_t> pos_of;       // arena index - start -> position (kNoMatch: built dead)
    std::unique_ptr<uint64_t[]> dead;   // tombstones over positions
  };
  struct State {
    std::shared_ptr<Base> base;
    std::shared_ptr<Arena> arena;
    std::vector<std::shared_ptr<Run>> runs;  // contiguous, ascending, covering [0, tail_start)
    uint32_t tail_start = 0;
  };
  struct Loc {
    bool in_base = false;
    uint32_t index = 0;  // base position or arena index
  };
  struct Rec {
    BoxRule rule;
    Loc loc;
  };
  struct Built {
    Result<Classifier> classifier;
    std::vector<uint64_t> seqs;  // snapshot rule i (value i in the classifier) -> seq
    std::vector<uint32_t> values;
  };

  UpdatableClassifier(int n_dims, const Options& o) : n_dims_(n_dims), opt_(o) {}
  static Built build_snapshot(int n_dims, const ClassifierOptions& opt, std::vector<std::pair<uint64_t, BoxRule>> snap);
  Status publish_rebuild_locked(Built built);
  Status maybe_rebuild_locked();
  Status finish_rebuild_locked(bool wait);
  Status add_runs_locked(State& st);
  Result<std::shared_ptr<Run>> make_run_locked(const Arena& a, uint32_t start, uint32_t end) const;
  std::vector<std::pair<uint64_t, BoxRule>> snapshot_locked() const;
  void publish_locked(std::shared_ptr<State> st);
  static uint32_t lookup(const State& s, const uint32_t* key, int n_dims);

  const int n_dims_;
  const Options opt_;
  std::atomic<std::shared_ptr<State>> state_;

  mutable std::mutex mu_;       // writer lock: everything below
  std::shared_ptr<State> cur_;  // == state_ (the writer's own reference)
  std::unordered_map<uint64_t, Rec> rules_;  // seq -> live rule
  std::unordered_map<uint32_t, std::vector<uint64_t>> by_value_;
  uint64_t next_seq_ = 0;
  uint64_t dead_in_base_ = 0;
  // Background rebuild in flight: its snapshot covers seq < rebuild_end_.
  bool rebuilding_ = false;
  uint64_t rebuild_end_ = 0;
  std::future<Built> pending_;
  Stats stats_;
};

template <class F>
void UpdatableClassifier::for_each_match(const uint32_t* key, uint32_t min_priority, F&& f) const {
  std::shared_ptr<State> s = state_.load(std::memory_order_acquire);
  // Delta matches in (priority, seq) order: seq order is arena order, so a stable sort suffices.
  std::vector<std::pair<uint32_t, uint32_t>> extra;
  const Arena& a = *s->arena;
  const uint32_t n = a.size.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n; ++i) {
    const DeltaEntry& e = a.e[i];
    if (e.rule.priority >= min_priority && e.rule.contains(key, n_dims_) && !e.dead.load(std::memory_order_acquire)) {
      extra.emplace_back(e.rule.priority, e.rule.value);
    }
  }
  std::stable_sort(extra.begin(), extra.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  size_t xi = 0;
  bool go = true;
  const Base& b = *s->base;
  // Base matches come in position order; a delta match goes first only with a lower priority
  // (equal priority: the base rule was inserted earlier).
  b.c.for_each_position(key, min_priority, [&](uint32_t pos) {
    if ((b.dead[pos / 64] >> (pos % 64)) & 1) return true;
    const uint32_t prio = b.c.priority_at(pos);
    while (xi < extra.size() && extra[xi].first < prio) {
      if (!f(extra[xi].first, extra[xi].second)) { go = false; return false; }
      ++xi;
    }
    if (!f(prio, b.value[pos])) { go = false; return false; }
    return true;
  });
  for (; go && xi < extra.size(); ++xi) {
    if (!f(extra[xi].first, extra[xi].second)) return;
  }
}

}  // namespace ztb
