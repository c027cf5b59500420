// Engine: pf semantics over a compiled Program, a flow table and counters.
//
// What: process(key, now) decides one packet the way pf does (docs/engine.md, pf-semantics.md §1):
//   1. not IP -> pass (reason non-ip); malformed -> block (reason malformed, counted per reason);
//   2. `set skip on` interface -> pass, nothing counted;
//   3. normalisation drops: UDP to port 0, TCP SYN+RST, no SYN/ACK/RST, FIN/PSH/URG without
//      ACK (SYN+FIN has FIN cleared first);
//   4. state lookup: a matching state decides (reason state), translations are re-applied;
//   5. the rule walk: classifier matches in entry order (= pf evaluation order): match rules apply
//      nat-to/rdr-to at once, pass/block record the decision (last match wins), `quick` stops,
//      and when the decision was made by an entry directly inside a quick anchor, the walk stops
//      at that anchor's end (Entry::quick_end). Once a match rule has translated the key, the
//      conjoined classifier boxes no longer describe the walk (an anchor entered before the
//      translation was tested against the old key), so the rest of the walk is the exact linear
//      walk (walk_linear) with the anchor gates of already-open anchors evaluated on the old key;
//   6. no decision -> pass without state; pass + keep state -> create a state (table full ->
//      block, reason state-limit); block return -> RST for TCP, ICMP unreachable otherwise.
// The slow twin (EngineOptions::linear_walk) runs step 5 as the linear walk from the start, never
// using the classifier: tests compare the two.
//
// Representation: Ruleset = Program + classifier built from Program::class_boxes, held by a
// shared_ptr that load() replaces atomically; a batch takes one reference and uses it for every
// packet, so readers never see a half-built ruleset and the old one is freed with its last reader.
//
// Worked example: entries 0 `block all`, 1 `pass quick proto tcp to port 22`, 2 `pass proto tcp`.
// TCP to 22: matches 0 (decision block), 1 (decision pass, quick -> stop) => pass by rule 1.
// TCP to 80: matches 0, 2 => pass by rule 2 (last match). UDP: matches 0 => block by rule 0.
//
// Thread-safety: process*/load/counters: one writer thread at a time (the binding's calls);
// counter cells may be read concurrently (relaxed atomics).
#pragma once

#include <atomic>
#include <memory>
#include <type_traits>

#include "core/flow_table.h"
#include "core/linear.h"
#include "core/packet.h"
#include "core/program.h"

// The fast classifier (native/core/classifier.h) is used when the build defines
// ZTB_HAVE_CLASSIFIER; the linear one is the slow twin either way.
#ifdef ZTB_HAVE_CLASSIFIER
#include "core/classifier.h"
#endif

namespace ztb {

enum class Reason : uint8_t {
  kRule = 0,
  kState = 1,
  kDefault = 2,
  kSkip = 3,
  kNormalize = 4,
  kStateLimit = 5,
  kMalformed = 6,
  kNonIp = 7,
  kCount = 8,
};

enum class ReturnAction : uint8_t { kNone = 0, kRst = 1, kIcmpUnreach = 2 };

constexpr int kMaxMatchIds = 8;
// Key changes by match-rule translations remembered per walk for the evaluations replay.
constexpr int kMaxWalkXlats = 8;

struct Verdict {
  uint8_t block = 0;  // 0 pass, 1 block
  Reason reason = Reason::kDefault;
  ReturnAction ret = ReturnAction::kNone;
  bool state_created = false;
  bool translated = false;
  uint8_t n_match = 0;
  uint32_t rule_id = kNone;
  uint32_t anchor_rule_id = kNone;
  uint32_t tenant = kNone;
  uint32_t match_ids[kMaxMatchIds] = {};
  FlowTuple xlat;  // translated tuple (valid when translated)
};

struct EngineOptions {
  uint32_t max_states = 100'000;
  Timeouts timeouts;
  uint32_t expire_budget = 64;  // dead states freed per batch at most
  bool linear_walk = false;     // slow twin: never use the classifier
  // Count pf's per-rule `evaluations` (skip steps on) by replaying the walk over Program::walk for
  // every packet that reaches the rule walk. Off by default: it costs one step per visited rule.
  bool count_evaluations = false;
  size_t max_boxes = 1u << 20;
};

// Engine-wide counters (not per ruleset).
struct EngineCounters {
  Counter reasons[static_cast<int>(Reason::kCount)];
  Counter malformed[static_cast<int>(MalformedReason::kCount)];
  Counter packets, bytes, states_created, states_expired, state_limit;
};

template <class C>
struct Ruleset {
  std::shared_ptr<Program> program;
  C classifier;
};

template <class C>
Result<C> build_classifier(std::span<const BoxRule> boxes) {
  if constexpr (std::is_same_v<C, LinearClassifier>) {
    return LinearClassifier(kDims, boxes);
  } else {
    return C::build(kDims, boxes);
  }
}

// Key dimensions of a packet (see program.h).
void key_dims(const PacketKey& k, uint32_t* dims);
// The packet's addresses and ports as they are.
FlowTuple tuple_of(const PacketKey& k);
// The tuple a state is keyed on: tuple_of with ICMP's ports folded onto the query id.
FlowTuple state_key(const PacketKey& k);
// The next pool address of family `af` for a rule's translation, or null when there is none.
const PoolAddr* pick_pool_addr(const Program& p, const Translation& t, uint32_t rule_id, uint8_t af);
constexpr uint16_t kNatPortLo = 50001;
constexpr uint16_t kNatPortHi = 65535;

template <class C>
class Engine {
 public:
  explicit Engine(EngineOptions opts)
      : opts_(opts), flows_(opts.max_states, opts.timeouts) {
    flows_.on_free = &Engine::on_state_free;
    flows_.on_free_ctx = this;
  }

  // Builds a complete ruleset, then swaps it in. States are kept (they keep their rule ids).
  Status load(const ProgramInput& in) {
    ProgramInput copy = in;
    copy.max_boxes = opts_.max_boxes;
    auto built = Program::build(copy);
    if (!built.is_ok()) return built.status();
    std::shared_ptr<Program> prog = built.take();
    auto cls = build_classifier<C>(prog->class_boxes);
    if (!cls.is_ok()) return cls.status();
    prog->generation = ++generation_;
    auto rs = std::make_shared<Ruleset<C>>(Ruleset<C>{prog, cls.take()});
    std::atomic_store(&ruleset_, std::shared_ptr<const Ruleset<C>>(rs));
    return Status::ok();
  }

  std::shared_ptr<const Ruleset<C>> ruleset() const { return std::atomic_load(&ruleset_); }

  // Call once per batch: bounded expiry work.
  void begin_batch(uint64_t now_ms) {
    current_ = ruleset();
    uint32_t freed = flows_.expire(now_ms, opts_.expire_budget);
    counters_.states_expired.add(freed);
  }
  void end_batch() { current_.reset(); }

  // Decides one packet. Requires begin_batch(); with no ruleset loaded every IP packet passes.
  void process(PacketKey k, uint64_t now_ms, Verdict* v);

  FlowTable& flows() { return flows_; }
  const EngineCounters& counters() const { return counters_; }
  const EngineOptions& options() const { return opts_; }

 private:
  struct WalkState {
    uint32_t decision = kNone;
    uint32_t fail = kNone;  // entry whose translation found no address, or a too-deep anchor
    uint8_t n_match = 0;
    uint32_t match_ids[kMaxMatchIds];
    bool stopped = false;
    bool translated = false;
    // For the evaluations replay (count_evaluations): the key after each key-changing match-rule
    // translation, by entry; fixed arrays so the hot path never allocates.
    uint8_t n_xlat = 0;
    bool xlat_overflow = false;
    uint32_t xlat_entry[kMaxWalkXlats];
    // Only what a translation changes; no initialisers, so a WalkState costs nothing to set up.
    struct XlatFields {
      uint32_t src[4], dst[4];
      uint16_t sport, dport;
    } xlat_key[kMaxWalkXlats];
  };
  // Replays pf's walk from `k` (the key the walk started with) over Program::walk, counting
  // `evaluations` with skip steps; decisions, stops and key changes follow the walk `w` just done.
  void count_evaluations(const Program& p, PacketKey k, const WalkState& w);
  // Applies an entry's rdr-to then nat-to; false when a pool has no address of the family.
  bool translate(const Program& p, const Entry& e, PacketKey& k);

  static void on_state_free(void* ctx, const State& s) {
    auto* self = static_cast<Engine*>(ctx);
    const Program* p = self->current_ ? self->current_->program.get() : nullptr;
    if (!p || s.generation != p->generation) return;
    auto sub = [&](uint32_t r) {
      if (r < p->n_rules) p->rule_counters[r].states_cur.sub(1);
    };
    sub(s.rule_id);
    sub(s.anchor_rule_id);
    for (int i = 0; i < s.n_match; ++i) sub(s.match_ids[i]);
  }

  bool flags_ok(uint8_t bits, uint8_t mask, const PacketKey& k) const {
    return mask == 0 || k.proto != 6 || !k.has_ports || (k.tcp_flags & mask) == bits;
  }

  // Runs one matched entry; returns false when the walk must stop. `dims` may be updated.
  // `on_translate` is set when a match rule changed the key.
  bool visit(const Program& p, uint32_t i, PacketKey& k, uint32_t* dims, WalkState& w, bool* on_translate);
  void walk_classifier(const Ruleset<C>& rs, PacketKey& k, WalkState& w);
  void walk_linear(const Program& p, uint32_t from, const PacketKey& gate_key, PacketKey& k, WalkState& w);
  uint32_t classify_tenant(const Program& p, const PacketKey& k) const;

  EngineOptions opts_;
  FlowTable flows_;
  std::shared_ptr<const Ruleset<C>> ruleset_;
  std::shared_ptr<const Ruleset<C>> current_;
  EngineCounters counters_;
  uint64_t now_ms_ = 0;  // the packet being decided's clock, for translate()'s NAT port search
  uint32_t generation_ = 0;
  std::vector<uint8_t> gate_;  // linear walk: anchor gate results (scratch, sized per ruleset)
};

#ifdef ZTB_HAVE_CLASSIFIER
using FastEngine = Engine<Classifier>;
#else
using FastEngine = Engine<LinearClassifier>;
#endif
using LinearEngine = Engine<LinearClassifier>;

}  // namespace ztb

#include "core/engine_impl.h"
