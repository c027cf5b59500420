// Engine tests: pf walk semantics on hand-built programs (last match, quick, quick anchors, match
// translations, states), and the classifier walk against the slow twin (the linear walk of the
// flattened program) on random programs with nested anchors, translations and states.
#include <atomic>
#include <functional>
#include <thread>
#include <random>
#include <vector>

#define ZTB_HAVE_CLASSIFIER 1  // FastEngine = Engine<Classifier>, checked against the linear twin
#include "core/engine.h"
#include "test/testing.h"

using namespace ztb;

namespace {

struct Dim {
  int d;
  uint32_t lo, hi;
};

struct PB {
  std::vector<uint32_t> entries, instances, chains, boxes, translations, pool, skip, rule_tenant;
  uint32_t n_rules = 0;
  uint32_t add_box(const std::vector<Dim>& dims) {
    uint32_t idx = static_cast<uint32_t>(boxes.size() / kBoxWords);
    for (int d = 0; d < kDims; ++d) {
      uint32_t lo = 0, hi = 0xffffffffu;
      for (const Dim& x : dims) if (x.d == d) { lo = x.lo; hi = x.hi; }
      boxes.push_back(lo);
      boxes.push_back(hi);
    }
    return idx;
  }
  uint32_t n_entries() const { return static_cast<uint32_t>(entries.size() / kEntryWords); }
  // Returns the entry index.
  uint32_t entry(EntryKind kind, uint32_t flags, uint32_t box_off, uint32_t box_cnt, const std::vector<uint32_t>& chain,
                 uint32_t anchor_rule = kNone, uint32_t nat = kNone, uint32_t rdr = kNone, uint32_t tcp = 0) {
    uint32_t idx = n_entries();
    uint32_t chain_off = static_cast<uint32_t>(chains.size());
    chains.insert(chains.end(), chain.begin(), chain.end());
    uint32_t w[kEntryWords] = {n_rules++, static_cast<uint32_t>(kind), flags, kNone, anchor_rule, tcp, nat, rdr,
                               box_off, box_cnt, chain_off, static_cast<uint32_t>(chain.size())};
    entries.insert(entries.end(), w, w + kEntryWords);
    rule_tenant.push_back(kNone);
    return idx;
  }
  uint32_t instance(uint32_t box_off, uint32_t box_cnt, uint32_t anchor_rule) {
    uint32_t idx = static_cast<uint32_t>(instances.size() / kInstanceWords);
    uint32_t w[kInstanceWords] = {n_entries(), n_entries(), box_off, box_cnt, 0, anchor_rule};
    instances.insert(instances.end(), w, w + kInstanceWords);
    return idx;
  }
  uint32_t anchor_rule() { rule_tenant.push_back(kNone); return n_rules++; }
  void close(uint32_t inst) { instances[inst * kInstanceWords + 1] = n_entries(); }
  void set_quick_end(uint32_t entry, uint32_t end) { entries[entry * kEntryWords + 3] = end; }
  uint32_t rdr_to(uint32_t addr, uint32_t port) {
    uint32_t idx = static_cast<uint32_t>(translations.size() / kTranslationWords);
    uint32_t off = static_cast<uint32_t>(pool.size() / kPoolWords);
    uint32_t pw[kPoolWords] = {4, addr, 0, 0, 0};
    pool.insert(pool.end(), pw, pw + kPoolWords);
    uint32_t tw[kTranslationWords] = {1, off, 1, port, port, port ? uint32_t{kXlatHasPort} : 0u, 0};
    translations.insert(translations.end(), tw, tw + kTranslationWords);
    return idx;
  }
  ProgramInput input() const {
    ProgramInput in;
    in.n_rules = n_rules;
    in.entries = entries; in.instances = instances; in.chains = chains; in.boxes = boxes;
    in.translations = translations; in.pool = pool; in.skip = skip; in.rule_tenant = rule_tenant;
    return in;
  }
};

PacketKey pkt(uint32_t ifindex, uint8_t dir, uint8_t proto, uint32_t src, uint16_t sp, uint32_t dst, uint16_t dp,
              uint8_t flags = 0x02) {
  PacketKey k;
  k.ifindex = ifindex; k.dir = dir; k.af = 4; k.proto = proto;
  k.src[0] = src; k.dst[0] = dst; k.sport = sp; k.dport = dp; k.tcp_flags = flags;
  k.has_ports = proto == 6 || proto == 17;
  k.length = 64;
  return k;
}

template <class E>
Verdict run(E& e, const PacketKey& k, uint64_t now = 0) {
  Verdict v;
  e.begin_batch(now);
  e.process(k, now, &v);
  e.end_batch();
  return v;
}

bool same(const Verdict& a, const Verdict& b) {
  if (a.block != b.block || a.reason != b.reason || a.rule_id != b.rule_id || a.anchor_rule_id != b.anchor_rule_id ||
      a.state_created != b.state_created || a.translated != b.translated || a.n_match != b.n_match || a.ret != b.ret) {
    return false;
  }
  for (int i = 0; i < a.n_match; ++i) if (a.match_ids[i] != b.match_ids[i]) return false;
  return !a.translated || a.xlat == b.xlat;
}

}  // namespace

TEST(engine_last_match_and_quick) {
  PB b;
  uint32_t all = b.add_box({});
  uint32_t p22 = b.add_box({{3, 6, 6}, {13, 22, 22}});
  uint32_t tcp = b.add_box({{3, 6, 6}});
  b.entry(EntryKind::kBlock, kEntryReturn, all, 1, {});
  b.entry(EntryKind::kPass, kEntryQuick, p22, 1, {});
  b.entry(EntryKind::kPass, 0, tcp, 1, {});
  b.entry(EntryKind::kBlock, 0, p22, 1, {});  // never reached for 22 (quick above)
  LinearEngine e(EngineOptions{});
  CHECK(e.load(b.input()).is_ok());
  Verdict v = run(e, pkt(1, 0, 6, 1, 1000, 2, 22));
  CHECK(!v.block && v.rule_id == 1 && v.reason == Reason::kRule);
  v = run(e, pkt(1, 0, 6, 1, 1000, 2, 80));
  CHECK(!v.block && v.rule_id == 2);
  v = run(e, pkt(1, 0, 17, 1, 1000, 2, 80));
  CHECK(v.block && v.rule_id == 0 && v.ret == ReturnAction::kIcmpUnreach);
}

TEST(engine_quick_anchor_semantics) {
  // block all; anchor "a" quick { pass to port 443; anchor "a/n" { pass to port 444 } }; block
  // to port 443,444 would be decided by the last block unless the quick anchor stops.
  PB b;
  uint32_t all = b.add_box({});
  uint32_t p443 = b.add_box({{13, 443, 443}});
  uint32_t p444 = b.add_box({{13, 444, 444}});
  b.entry(EntryKind::kBlock, 0, all, 1, {});
  uint32_t ar = b.anchor_rule();
  uint32_t a = b.instance(all, 1, ar);
  uint32_t e1 = b.entry(EntryKind::kPass, 0, p443, 1, {a}, ar);
  uint32_t nr = b.anchor_rule();
  uint32_t n = b.instance(all, 1, nr);
  b.entry(EntryKind::kPass, 0, p444, 1, {a, n}, nr);
  b.close(n);
  b.close(a);
  b.set_quick_end(e1, b.n_entries());
  uint32_t last = b.entry(EntryKind::kBlock, 0, all, 1, {});
  for (bool linear : {false, true}) {
    EngineOptions o;
    o.linear_walk = linear;
    LinearEngine e(o);
    Status st = e.load(b.input());
    CHECK(st.is_ok());
    Verdict v = run(e, pkt(1, 0, 6, 1, 1000, 2, 443));
    CHECK(!v.block && v.rule_id == b.entries[e1 * kEntryWords] && v.anchor_rule_id == ar);
    v = run(e, pkt(1, 0, 6, 1, 1000, 2, 444));  // decided in the nested non-quick anchor: continues
    CHECK(v.block && v.rule_id == b.entries[last * kEntryWords]);
  }
}

TEST(engine_match_rdr_then_pass_sees_translation) {
  PB b;
  uint32_t all = b.add_box({});
  uint32_t to_pub = b.add_box({{8, 100, 100}, {13, 80, 80}});
  uint32_t to_priv = b.add_box({{8, 200, 200}, {13, 8080, 8080}});
  b.entry(EntryKind::kBlock, 0, all, 1, {});
  b.entry(EntryKind::kMatch, 0, to_pub, 1, {}, kNone, kNone, b.rdr_to(200, 8080));
  b.entry(EntryKind::kPass, kEntryKeepState, to_priv, 1, {});
  LinearEngine e(EngineOptions{});
  CHECK(e.load(b.input()).is_ok());
  Verdict v = run(e, pkt(1, 0, 6, 1, 1000, 100, 80), 0);
  CHECK(!v.block && v.rule_id == 2 && v.translated && v.xlat.dst[0] == 200 && v.xlat.dport == 8080);
  CHECK(v.state_created && v.n_match == 1 && v.match_ids[0] == 1);
  // Reply from the private server, out: matches the state, translated back to the public address.
  v = run(e, pkt(1, 1, 6, 200, 8080, 1, 1000, 0x12), 1);
  CHECK(!v.block && v.reason == Reason::kState && v.rule_id == 2 && v.translated && v.xlat.src[0] == 100 &&
        v.xlat.sport == 80);
}

TEST(engine_state_limit_and_swap_keeps_states) {
  PB b;
  uint32_t all = b.add_box({});
  b.entry(EntryKind::kPass, kEntryKeepState, all, 1, {});
  EngineOptions o;
  o.max_states = 2;
  LinearEngine e(o);
  CHECK(e.load(b.input()).is_ok());
  CHECK(run(e, pkt(1, 0, 17, 1, 10, 2, 53)).state_created);
  CHECK(run(e, pkt(1, 0, 17, 3, 10, 2, 53)).state_created);
  Verdict v = run(e, pkt(1, 0, 17, 4, 10, 2, 53));
  CHECK(v.block && v.reason == Reason::kStateLimit);
  PB blk;
  blk.entry(EntryKind::kBlock, 0, blk.add_box({}), 1, {});
  CHECK(e.load(blk.input()).is_ok());
  v = run(e, pkt(1, 1, 17, 2, 53, 1, 10));  // reply to the first state: passes across the swap
  CHECK(!v.block && v.reason == Reason::kState && v.rule_id == 0);
  CHECK(run(e, pkt(1, 0, 17, 9, 10, 2, 53)).block);
  CHECK(e.flows().check_invariants());
}

TEST(engine_normalisation) {
  PB b;
  b.entry(EntryKind::kPass, 0, b.add_box({}), 1, {});
  LinearEngine e(EngineOptions{});
  CHECK(e.load(b.input()).is_ok());
  CHECK(run(e, pkt(1, 0, 17, 1, 10, 2, 0)).reason == Reason::kNormalize);
  CHECK(run(e, pkt(1, 0, 6, 1, 10, 2, 80, 0x06)).reason == Reason::kNormalize);  // SYN+RST
  CHECK(run(e, pkt(1, 0, 6, 1, 10, 2, 80, 0x00)).reason == Reason::kNormalize);  // no SYN/ACK/RST
  CHECK(run(e, pkt(1, 0, 6, 1, 10, 2, 80, 0x01)).reason == Reason::kNormalize);  // FIN without ACK
  CHECK(run(e, pkt(1, 0, 6, 1, 10, 2, 80, 0x03)).reason == Reason::kRule);       // SYN+FIN: FIN cleared
}

namespace {

// Random program: a tree of rules and anchors over a tiny value domain, flattened like
// compile-native.ts does it.
struct RandomProgram {
  PB b;
  std::mt19937& rng;
  explicit RandomProgram(std::mt19937& r) : rng(r) {}
  std::vector<Dim> rand_dims(double wild) {
    std::vector<Dim> out;
    auto pick = [&](int d, uint32_t dom) {
      if (std::uniform_real_distribution<>(0, 1)(rng) < wild) return;
      uint32_t lo = rng() % dom, hi = lo + rng() % (dom - lo);
      out.push_back({d, lo, hi});
    };
    pick(0, 4); pick(1, 2); pick(4, 8); pick(8, 8); pick(12, 6); pick(13, 6);
    if (rng() % 3 == 0) out.push_back({3, (rng() & 1) ? 6u : 17u, 0}), out.back().hi = out.back().lo;
    return out;
  }
  std::pair<uint32_t, uint32_t> rand_boxes(double wild) {
    uint32_t n = 1 + rng() % 2;
    uint32_t off = b.add_box(rand_dims(wild));
    for (uint32_t i = 1; i < n; ++i) b.add_box(rand_dims(wild));
    return {off, n};
  }
  void ruleset(std::vector<uint32_t>& chain, uint32_t anchor_rule, bool quick_anchor, int depth) {
    int n = 1 + rng() % 5;
    std::vector<uint32_t> direct;
    for (int i = 0; i < n; ++i) {
      if (depth < 3 && rng() % 4 == 0) {
        auto [off, cnt] = rand_boxes(0.8);
        uint32_t ar = b.anchor_rule();
        uint32_t inst = b.instance(off, cnt, ar);
        chain.push_back(inst);
        bool q = rng() % 2;
        ruleset(chain, ar, q, depth + 1);
        chain.pop_back();
        b.close(inst);
        continue;
      }
      auto [off, cnt] = rand_boxes(0.6);
      uint32_t k = rng() % 10;
      EntryKind kind = k < 4 ? EntryKind::kPass : k < 8 ? EntryKind::kBlock : EntryKind::kMatch;
      uint32_t flags = (rng() % 4 == 0 ? uint32_t{kEntryQuick} : 0u) | (kind == EntryKind::kPass && rng() % 2 ? uint32_t{kEntryKeepState} : 0u);
      uint32_t rdr = kind == EntryKind::kMatch && rng() % 2 ? b.rdr_to(rng() % 8, rng() % 6) : kNone;
      uint32_t tcp = rng() % 5 == 0 ? (0x02u | 0x12u << 8) : 0;
      direct.push_back(b.entry(kind, flags, off, cnt, chain, anchor_rule, kNone, rdr, tcp));
    }
    if (quick_anchor) for (uint32_t e : direct) b.set_quick_end(e, kNone);  // fixed up by caller
    pending.push_back({direct, quick_anchor});
  }
  struct Pending { std::vector<uint32_t> direct; bool quick; };
  std::vector<Pending> pending;
};

}  // namespace

TEST(engine_classifier_walk_equals_linear_twin) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("ZTB_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  int mismatches = 0;
  for (int prog = 0; prog < 150 && mismatches == 0; ++prog) {
    RandomProgram rp(rng);
    // Top level: a ruleset whose nested anchors get their quick_end from the enclosing instance.
    std::vector<uint32_t> chain;
    // Build with explicit instances so quick_end can be set from each instance's end.
    PB& b = rp.b;
    int n_top = 2 + rng() % 8;
    for (int i = 0; i < n_top; ++i) {
      size_t before_pending = rp.pending.size();
      if (rng() % 3 == 0) {
        auto [off, cnt] = rp.rand_boxes(0.8);
        uint32_t ar = b.anchor_rule();
        uint32_t inst = b.instance(off, cnt, ar);
        chain.push_back(inst);
        rp.ruleset(chain, ar, rng() % 2, 1);
        chain.pop_back();
        b.close(inst);
      } else {
        rp.ruleset(chain, kNone, false, 0);
      }
      (void)before_pending;
    }
    // Quick anchors: an entry directly inside stops the walk at its instance end. Recover each
    // direct group's instance end from its chain's innermost instance.
    for (const auto& pd : rp.pending) {
      if (!pd.quick) continue;
      for (uint32_t e : pd.direct) {
        uint32_t cc = b.entries[e * kEntryWords + 11], co = b.entries[e * kEntryWords + 10];
        if (cc == 0) continue;
        uint32_t inner = b.chains[co + cc - 1];
        b.set_quick_end(e, b.instances[inner * kInstanceWords + 1]);
      }
    }
    EngineOptions fo, so;
    fo.max_states = so.max_states = 16;
    so.linear_walk = true;
    FastEngine fast(fo);
    LinearEngine slow(so);
    Status s1 = fast.load(b.input()), s2 = slow.load(b.input());
    CHECK(s1.is_ok() && s2.is_ok());
    if (!s1.is_ok() || !s2.is_ok()) { std::fprintf(stderr, "%s\n", s1.message().c_str()); break; }
    CHECK(fast.ruleset()->program->check_invariants());
    uint64_t now = 0;
    for (int i = 0; i < 400; ++i) {
      now += rng() % 20000;
      uint8_t flags_pick[] = {0x02, 0x12, 0x10, 0x11, 0x04};
      PacketKey k = pkt(rng() % 4, rng() % 2, (rng() & 1) ? 6 : 17, rng() % 8, 1 + rng() % 5, rng() % 8, 1 + rng() % 5,
                        flags_pick[rng() % 5]);
      Verdict a = run(fast, k, now), c = run(slow, k, now);
      if (!same(a, c)) {
        ++mismatches;
        std::fprintf(stderr,
                     "engine twin mismatch: seed %llu program %d packet %d: rule %u/%u block %d/%d reason %d/%d "
                     "created %d/%d xlat %d/%d matches %d/%d\n",
                     static_cast<unsigned long long>(seed), prog, i, a.rule_id, c.rule_id, a.block, c.block,
                     int(a.reason), int(c.reason), a.state_created, c.state_created, a.translated, c.translated,
                     a.n_match, c.n_match);
        break;
      }
      if (!fast.flows().check_invariants()) { CHECK(false); break; }
    }
  }
  CHECK_EQ(mismatches, 0);
}

// Ruleset swap while lookups run: one thread processes packets, another loads two rulesets in
// turn. Every verdict must come wholly from one of them (ruleset A passes by rule 1, ruleset B
// blocks by rule 0 of a one-rule program), never a mix, and nothing leaks or races under ASan.
TEST(engine_swap_while_processing) {
  PB a;
  a.entry(EntryKind::kBlock, 0, a.add_box({}), 1, {});
  a.entry(EntryKind::kPass, 0, a.add_box({{3, 17, 17}}), 1, {});
  PB b;
  b.entry(EntryKind::kBlock, 0, b.add_box({}), 1, {});
  FastEngine e(EngineOptions{});
  CHECK(e.load(a.input()).is_ok());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, seen_a{0}, seen_b{0};
  std::thread reader([&] {
    uint64_t now = 0;
    while (!stop.load()) {
      e.begin_batch(now);
      for (int i = 0; i < 64; ++i) {
        Verdict v;
        e.process(pkt(1, 0, 17, static_cast<uint32_t>(i), 10, 2, 53), now, &v);
        if (!v.block && v.rule_id == 1) ++seen_a;
        else if (v.block && v.rule_id == 0) ++seen_b;
        else ++bad;
      }
      e.end_batch();
      ++now;
    }
  });
  for (int i = 0; i < 200; ++i) CHECK(e.load((i % 2 ? a : b).input()).is_ok());
  stop = true;
  reader.join();
  CHECK_EQ(bad.load(), 0);
  CHECK(seen_a.load() + seen_b.load() > 0);
}
