// Program: a compiled ruleset — the flattened pf rule walk, its boxes, translations and tenant map.
//
// What: src/engine/compile-native.ts flattens the IR's anchor tree in evaluation order into
// *entries* (one per pass/block/match rule per anchor instance; wildcard targets expanded) and
// *instances* (one per anchor rule reached, covering the entries [start, end) it evaluates). Every
// criterion becomes boxes over the kDims dimensions below (negations and tables as complement
// boxes, `!=`/`<>` ports as two boxes, groups resolved to interface indices). TCP flags are a
// post-check. An entry matches a packet iff one of its own boxes contains the key, its flags test
// passes, and every instance on its chain (the anchors it sits in) matched when it was entered.
//
// Representation: ProgramInput is the flat wire format (typed arrays from TypeScript; layouts in
// the k*Words constants). Program::build validates every index and size, then precomputes the
// classifier boxes: each entry's own boxes intersected with the gate boxes of every instance on its
// chain (priority = value = entry index), so one lookup finds the entries whose whole chain
// matches — exact as long as the key does not change during the walk (see engine.h).
//
// Dimensions (kDims = 15): 0 interface index, 1 direction (0 in, 1 out), 2 af (4, 6), 3 proto,
// 4..7 source address words (IPv4 in word 4, 5..7 zero), 8..11 destination, 12 source port,
// 13 destination port (kNoPort when the packet has no ports), 14 ICMP type * 512 + code, where a
// packet without a code uses code 256 (it matches a type-only test but no code test), kNoIcmp
// when the packet carries no ICMP header.
//
// Worked example: `block all` (entry 0, one wildcard box), `anchor "t" on em0 { pass proto tcp
// to port 443 }` (instance 0 = entries [1,2), gate box iface = em0's index; entry 1 own box proto
// 6, dport 443..443). Classifier boxes: entry 0 wildcard; entry 1 = {iface em0, proto 6, dport 443}.
// A TCP packet to 443 on em0 matches entries 0 and 1: the walk records block, then pass => pass.
//
// Invariants: entries[i].quick_end > i; instances nest (start/end ranges form a tree); every index
// is in range (checked by build). Thread-safety: immutable after build except the counters.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/box.h"
#include "core/counters.h"
#include "core/lpm.h"
#include "core/status.h"

namespace ztb {

constexpr int kDims = 15;
constexpr uint32_t kNoPort = 0x10000;
constexpr uint32_t kNoIcmp = 0x20000;
constexpr uint32_t kNone = 0xffffffffu;

// Wire layouts (uint32 words per record).
constexpr int kBoxWords = 2 * kDims;  // lo0, hi0, lo1, hi1, ...
// entry: rule_id, kind, flags, quick_end, anchor_rule_id, tcp_flags(bits | mask << 8), nat, rdr,
//        box_off, box_cnt, chain_off, chain_cnt
constexpr int kEntryWords = 12;
// instance: start, end, box_off, box_cnt, tcp_flags(bits | mask << 8), anchor_rule_id
constexpr int kInstanceWords = 6;
// translation: kind (0 nat, 1 rdr), pool_off, pool_cnt, port_lo, port_hi, flags
// (1 = rdr-to has a port, 2 = the rule has a destination port test), rule_dport_lo
constexpr int kTranslationWords = 7;
// pool address: af, w0, w1, w2, w3
constexpr int kPoolWords = 5;
// tenant prefix: af, w0..w3, len, tenant
constexpr int kTenantPrefixWords = 7;
// walk step (the pf rule walk replayed for `evaluations`, one per rule visit position in flattened
// order, anchor rules included): rule_id, kind (0 entry, 1 anchor head), ref (entry / instance
// index), end (step after an anchor's content; i + 1 otherwise), quick_end_step (end of the quick
// anchor an entry sits directly in, or kNone), tcp_flags, 8 skip-step targets (step indices, in
// pf_match_rule's criterion order), 9 criterion (box_off, box_cnt) pairs into walk_boxes (iface,
// dir, af, proto, src, dst, sport, dport, icmp; box_cnt kNone = no such test).
constexpr int kWalkWords = 32;
constexpr int kWalkSkips = 8;
constexpr int kWalkCrits = 9;

enum class EntryKind : uint8_t { kPass = 0, kBlock = 1, kMatch = 2, kDepthDrop = 3 };
enum EntryFlags : uint32_t { kEntryQuick = 1, kEntryReturn = 2, kEntryKeepState = 4 };
enum ProgramFlags : uint32_t { kProgramIfBound = 1, kProgramTenantByAnchor = 2 };

struct ProgramInput {
  uint32_t n_rules = 0;    // IR rules (counter slots)
  uint32_t n_tenants = 0;  // tenant numbers are 0..n_tenants-1
  uint32_t flags = 0;      // ProgramFlags
  std::span<const uint32_t> entries, instances, chains, boxes, translations, pool, skip;
  std::span<const uint32_t> walk, walk_boxes;  // optional (empty = no evaluations counting)
  std::span<const uint32_t> tenant_ifaces;    // pairs (ifindex, tenant)
  std::span<const uint32_t> tenant_vlans;     // pairs (vlan, tenant)
  std::span<const uint32_t> tenant_vnis;      // pairs (vni, tenant)
  std::span<const uint32_t> tenant_prefixes;  // kTenantPrefixWords each
  std::span<const uint32_t> rule_tenant;      // n_rules: fallback tenant by top-level anchor, or kNone
  // Caps (from engine options).
  size_t max_boxes = 1u << 20;
};

struct Entry {
  uint32_t rule_id;
  EntryKind kind;
  uint32_t flags;
  uint32_t quick_end;  // index where the walk stops if this entry decided (quick anchor), or kNone
  uint32_t anchor_rule_id;
  uint8_t tcp_bits, tcp_mask;
  uint32_t nat, rdr;
  uint32_t box_off, box_cnt;
  uint32_t chain_off, chain_cnt;
};

struct Instance {
  uint32_t start, end;
  uint32_t box_off, box_cnt;
  uint8_t tcp_bits, tcp_mask;
  uint32_t anchor_rule_id;
};

enum TranslationFlags : uint32_t { kXlatHasPort = 1, kXlatRuleHasDport = 2 };

struct Translation {
  uint8_t kind;  // 0 nat-to, 1 rdr-to
  uint32_t pool_off, pool_cnt;
  uint32_t port_lo, port_hi;
  uint32_t flags;
  uint32_t rule_dport_lo;
};

struct WalkStep {
  uint32_t rule_id;
  uint8_t is_anchor;
  uint8_t tcp_bits, tcp_mask;
  uint32_t ref, end, quick_end_step;
  uint32_t skip[kWalkSkips];
  uint32_t crit_off[kWalkCrits], crit_cnt[kWalkCrits];
};

struct PoolAddr {
  uint8_t af;
  uint32_t w[4];
};

class Program {
 public:
  static Result<std::shared_ptr<Program>> build(const ProgramInput& in);

  std::vector<Entry> entries;
  std::vector<Instance> instances;      // sorted by (start, nesting): outer first
  std::vector<uint32_t> chains;         // instance ids
  std::vector<BoxRule> own_boxes;       // entry and instance criteria (value = owner)
  std::vector<BoxRule> class_boxes;     // conjoined, for the classifier
  std::vector<Translation> translations;
  std::vector<PoolAddr> pool;
  std::vector<uint32_t> skip;           // sorted ifindices
  std::vector<WalkStep> walk;           // the pf walk for `evaluations` (may be empty)
  std::vector<BoxRule> walk_boxes;
  std::unordered_map<uint32_t, uint32_t> tenant_by_iface, tenant_by_vni;
  std::vector<uint32_t> tenant_by_vlan;  // 4096 entries, kNone = none
  Lpm tenant_prefixes;
  std::vector<uint32_t> rule_tenant;
  uint32_t n_rules = 0, n_tenants = 0, flags = 0;
  uint32_t generation = 0;

  // Counters of this ruleset (written by the engine's single writer; readable any time).
  std::unique_ptr<RuleCounters[]> rule_counters;
  std::unique_ptr<TenantCounters[]> tenant_counters;
  // Pool round-robin cursors per rule id (pf keeps them in the rule; a reload starts over).
  mutable std::vector<uint32_t> rr;

  bool is_skipped(uint32_t ifindex) const;
  bool boxes_contain(uint32_t off, uint32_t cnt, const uint32_t* key) const {
    for (uint32_t b = 0; b < cnt; ++b) {
      if (own_boxes[off + b].contains(key, kDims)) return true;
    }
    return false;
  }
  bool walk_crit_ok(const WalkStep& s, int c, const uint32_t* key) const {
    if (s.crit_cnt[c] == kNone) return true;
    for (uint32_t b = 0; b < s.crit_cnt[c]; ++b) {
      if (walk_boxes[s.crit_off[c] + b].contains(key, kDims)) return true;
    }
    return false;
  }
  bool check_invariants() const;
};

}  // namespace ztb
