// Flow table tests: direction-ordered keys, translation keys, TCP/UDP state machines and timeouts,
// capacity refusal and bounded expiry, with check_invariants() after every mutation.
#include <random>

#include "core/flow_table.h"
#include "test/testing.h"

using namespace ztb;

namespace {

FlowTuple tup(uint32_t s, uint16_t sp, uint32_t d, uint16_t dp, uint8_t proto = 6) {
  FlowTuple t;
  t.af = 4;
  t.proto = proto;
  t.src[0] = s;
  t.dst[0] = d;
  t.sport = sp;
  t.dport = dp;
  return t;
}

State make_state(FlowTable& ft, const FlowTuple& o, const FlowTuple& t, uint8_t dir) {
  State s;
  s.fwd = o;
  s.rev = t.reversed();
  s.dir = dir;
  s.rule_id = 7;
  ft.init_protocol_state(s, 0x02);
  return s;
}

}  // namespace

TEST(flow_direction_ordered_keys) {
  FlowTable ft(16, Timeouts{});
  FlowTuple ab = tup(1, 1000, 2, 443);
  uint32_t n = ft.insert(make_state(ft, ab, ab, 0), 0);
  CHECK(n != kNoIndex);
  CHECK(ft.check_invariants());
  CHECK(ft.lookup(ab, 0, 0, 1).node == n);                  // in A->B
  FlowMatch r = ft.lookup(ab.reversed(), 1, 0, 1);           // out B->A: reply
  CHECK(r.node == n);
  CHECK(r.reply);
  CHECK(ft.lookup(ab, 1, 0, 1).node == kNoIndex);            // out A->B: forwarded copy
  CHECK(ft.lookup(ab.reversed(), 0, 0, 1).node == kNoIndex); // in B->A
}

TEST(flow_translation_keys) {
  FlowTable ft(16, Timeouts{});
  // out nat: stack A->B, wire N->B
  FlowTuple o = tup(1, 1000, 2, 80);
  FlowTuple t = tup(9, 1000, 2, 80);
  uint32_t n = ft.insert(make_state(ft, o, t, 1), 0);
  CHECK(ft.check_invariants());
  CHECK(ft.lookup(o, 1, 0, 1).node == n);
  FlowMatch r = ft.lookup(t.reversed(), 0, 0, 1);  // reply in B->N
  CHECK(r.node == n && r.reply);
  CHECK(ft.lookup(o.reversed(), 0, 0, 1).node == kNoIndex);  // B->A is not on the wire
  CHECK(ft.state(n).is_translated());
}

TEST(flow_if_bound) {
  FlowTable ft(16, Timeouts{});
  FlowTuple ab = tup(1, 1000, 2, 443);
  State s = make_state(ft, ab, ab, 0);
  s.ifindex = 5;
  s.bound = true;
  ft.insert(s, 0);
  CHECK(ft.lookup(ab, 0, 5, 1).node != kNoIndex);
  CHECK(ft.lookup(ab, 0, 6, 1).node == kNoIndex);
}

TEST(flow_collisions_and_oldest_first) {
  FlowTable ft(16, Timeouts{});
  FlowTuple o = tup(1, 1000, 2, 80);
  FlowTuple n1 = tup(9, 50001, 2, 80);
  uint32_t a = ft.insert(make_state(ft, o, n1, 1), 0);
  // Another out-state translating onto the same wire tuple collides; a different one does not.
  CHECK(ft.collides(tup(3, 1000, 2, 80), n1.reversed(), 1, false, 0, 1));
  CHECK(!ft.collides(tup(3, 1000, 2, 80), tup(9, 50002, 2, 80).reversed(), 1, false, 0, 1));
  // An in-state and an out-state on one lookup key: the oldest is found.
  FlowTuple ab = tup(5, 10, 6, 20);
  uint32_t first = ft.insert(make_state(ft, ab, ab, 0), 2);
  uint32_t second = ft.insert(make_state(ft, ab.reversed(), ab.reversed(), 1), 3);
  CHECK(ft.lookup(ab, 0, 0, 4).node == first);
  CHECK(second != kNoIndex && a != kNoIndex);
  CHECK(ft.check_invariants());
}

TEST(flow_tcp_state_machine_and_timeouts) {
  Timeouts to;
  FlowTable ft(16, to);
  FlowTuple ab = tup(1, 1000, 2, 443);
  uint32_t n = ft.insert(make_state(ft, ab, ab, 0), 0);
  CHECK_EQ(ft.state(n).timeout_ms, to.tcp_first);
  FlowMatch rep = ft.lookup(ab.reversed(), 1, 0, 10);
  ft.update(rep, 0x12, 60, 10);  // SYN+ACK: the responder is still SYN_SENT
  CHECK_EQ(ft.state(n).timeout_ms, to.tcp_opening);
  ft.update(ft.lookup(ab, 0, 0, 11), 0x10, 60, 11);  // ACK
  CHECK_EQ(ft.state(n).timeout_ms, to.tcp_established);
  FlowMatch fw = ft.lookup(ab, 0, 0, 20);
  ft.update(fw, 0x11, 60, 20);  // FIN+ACK from the initiator
  CHECK_EQ(ft.state(n).timeout_ms, to.tcp_closing);
  ft.update(ft.lookup(ab.reversed(), 1, 0, 30), 0x11, 60, 30);  // FIN+ACK back
  CHECK_EQ(ft.state(n).timeout_ms, to.tcp_finwait);
  ft.update(ft.lookup(ab, 0, 0, 31), 0x10, 60, 31);  // last ACK
  CHECK_EQ(ft.state(n).timeout_ms, to.tcp_closed);
  // RST closes at once.
  FlowTuple cd = tup(3, 1000, 4, 22);
  uint32_t m = ft.insert(make_state(ft, cd, cd, 0), 100);
  ft.update(ft.lookup(cd, 0, 0, 101), 0x04, 60, 101);
  CHECK_EQ(ft.state(m).timeout_ms, to.tcp_closed);
  // Expired after the idle timeout.
  CHECK(ft.lookup(cd, 0, 0, 101 + to.tcp_closed - 1).node == m);
  CHECK(ft.lookup(cd, 0, 0, 101 + to.tcp_closed - 1 + to.tcp_closed).node == kNoIndex);
  CHECK(ft.check_invariants());
}

TEST(flow_udp_single_multiple) {
  Timeouts to;
  FlowTable ft(4, to);
  FlowTuple ab = tup(1, 5353, 2, 53, 17);
  uint32_t n = ft.insert(make_state(ft, ab, ab, 1), 0);
  CHECK_EQ(ft.state(n).timeout_ms, to.udp_first);
  ft.update(ft.lookup(ab, 1, 0, 1), 0, 60, 1);
  CHECK_EQ(ft.state(n).timeout_ms, to.udp_single);
  ft.update(ft.lookup(ab.reversed(), 0, 0, 2), 0, 60, 2);
  ft.update(ft.lookup(ab, 1, 0, 3), 0, 60, 3);
  CHECK_EQ(ft.state(n).timeout_ms, to.udp_multiple);
}

TEST(flow_capacity_and_random_invariants) {
  FlowTable ft(8, Timeouts{});
  for (uint32_t i = 0; i < 8; ++i) CHECK(ft.insert(make_state(ft, tup(i, 1, 100, 2), tup(i, 1, 100, 2), 0), 0) != kNoIndex);
  CHECK(ft.insert(make_state(ft, tup(50, 1, 100, 2), tup(50, 1, 100, 2), 0), 1) == kNoIndex);  // full of live states
  // After tcp.first the states are dead: insert reclaims them.
  CHECK(ft.insert(make_state(ft, tup(50, 1, 100, 2), tup(50, 1, 100, 2), 0), 200'000) != kNoIndex);
  CHECK(ft.check_invariants());
  std::mt19937 rng(7);
  FlowTable big(64, Timeouts{});
  uint64_t now = 0;
  for (int i = 0; i < 20000; ++i) {
    now += rng() % 5000;
    FlowTuple t = tup(rng() % 32, static_cast<uint16_t>(rng() % 4), rng() % 4, 80, (rng() & 1) ? 6 : 17);
    switch (rng() % 4) {
      case 0: big.insert(make_state(big, t, (rng() & 1) ? t : tup(99, 7, t.dst[0], 80, t.proto), rng() & 1), now); break;
      case 1: { FlowMatch m = big.lookup(t, rng() & 1, 0, now); if (m.node != kNoIndex) big.update(m, static_cast<uint8_t>(rng()), 60, now); break; }
      case 2: big.expire(now, 1 + rng() % 16); break;
      default: { uint32_t node = rng() % 64; if (big.state(node).in_use) big.remove(node); break; }
    }
    if (!big.check_invariants()) { CHECK(false); break; }
  }
}

// Regression: a dead state whose two links share a bucket (here A:p -> A:p, its own reply) was
// freed mid-scan and the scan then followed the freed node's reused link into the free list,
// looping forever.
TEST(flow_regression_dead_state_both_links_in_one_bucket) {
  FlowTable ft(4, Timeouts{});
  FlowTuple self = tup(1, 5, 1, 5, 17);
  for (int round = 0; round < 3; ++round) {
    uint64_t t0 = static_cast<uint64_t>(round) * 1'000'000;
    CHECK(ft.insert(make_state(ft, self, self, 0), t0) != kNoIndex);
    CHECK(ft.lookup(self, 1, 0, t0 + 1).node != kNoIndex);
    CHECK(ft.lookup(self, 1, 0, t0 + 500'000).node == kNoIndex);  // dead: freed, scan ends
    CHECK(!ft.collides(self, self, 0, false, 0, t0 + 500'000));
    CHECK(ft.check_invariants());
  }
}
