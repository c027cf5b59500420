// Counters: per rule, per tenant, per drop reason, readable while lookups run.
//
// What: Counter is a 64-bit cell written by exactly one thread (the one running the engine's batch
// calls) and read by any thread. The writer does a relaxed load + relaxed store (no locked
// read-modify-write on the hot path, since there is a single writer); a reader sees some recent
// value of each cell — never a torn one — but cells are not a consistent snapshot of each other.
//
// Representation: RuleCounters are indexed by IR rule id and live in the compiled Program, so a
// ruleset swap starts fresh counters for the new ruleset while the old ruleset's block stays valid
// for as long as a reader holds it. TenantCounters are indexed by tenant number (same Program).
//
// Thread-safety: one writer per counter block at a time; readers lock-free.
#pragma once

#include <atomic>
#include <cstdint>

namespace ztb {

class Counter {
 public:
  void add(uint64_t v) { v_.store(v_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed); }
  void sub(uint64_t v) { v_.store(v_.load(std::memory_order_relaxed) - v, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }
  void reset() { v_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Per IR rule. `matches` counts rule-walk matches (a rule whose criteria matched the packet while
// the walk reached it); `evaluations` counts pf's visits with skip steps (only when the engine runs
// with EngineOptions::count_evaluations: the classifier never visits non-matching rules, so a
// replay of the walk does it). Index 0 of packets/bytes = in, 1 = out.
struct RuleCounters {
  Counter matches;
  Counter evaluations;
  Counter packets[2];
  Counter bytes[2];
  Counter states_cur;
  Counter states_total;
};
constexpr int kRuleCounterFields = 8;  // matches, pkts in/out, bytes in/out, states cur/total, evaluations

struct TenantCounters {
  Counter packets;
  Counter bytes;
  Counter blocked;
};
constexpr int kTenantCounterFields = 3;

}  // namespace ztb
