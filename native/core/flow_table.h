// Flow table: pf keep-state semantics with a fixed node pool (no allocation per packet).
//
// What: a state is created by a stateful pass in direction D from a packet whose tuple before
// translation is O and after translation is T (T == O without nat-to/rdr-to). pf keys a state by
// the direction it was created in:
//   * forward: a later packet in direction D whose tuple equals O matches (and is translated to T);
//   * reply:   a packet in the other direction whose tuple equals reverse(T) matches (and is
//              translated back to reverse(O)).
// So a state made by `in A->B` matches `in A->B` and `out B->A`, but not `out A->B` (the
// forwarded copy, which pf filters again) nor `in B->A`. For an inbound rdr-to O is pf's wire key
// and T its stack key; for an outbound nat-to O is the stack key and T the wire key.
//
// Representation: nodes live in a pool of `capacity` entries allocated once; a free list links
// unused nodes. Each node is on two hash chains (forward key, reply key); a chain link is
// (node << 1 | side). Buckets are a power of two >= 2 * capacity.
//
// Protocol state and timeouts follow pf (defaults of pf.conf(5)): TCP tracks a peer state per side
// from flags only (no sequence windows), exactly as the reference evaluator does: any packet from a
// side puts it in SYN_SENT at least, FIN -> CLOSING, an ACK moves a SYN_SENT peer to ESTABLISHED
// and a CLOSING peer to FIN_WAIT_2, RST -> both TIME_WAIT; the timeout follows pf's ladder
// (closed, finwait, opening, closing, established). UDP and other protocols: SINGLE /
// MULTIPLE. ICMP: icmp.first at creation, icmp.error afterwards.
//
// Expiry: a state whose idle time reaches its timeout is dead. Lookups treat a dead state as
// absent and free it; expire(now, budget) frees at most `budget` dead states per call (the engine
// calls it once per batch with a small budget), and an insert into a full table first sweeps up to
// kFullSweep nodes for dead ones before refusing. So no call does unbounded work.
//
// Worked example: create(in, 10.0.0.1:40000 -> 10.0.0.2:443 tcp S) -> node 0; lookup(out,
// 10.0.0.2:443 -> 10.0.0.1:40000) hashes the tuple, walks the chain, finds node 0 on its reply side
// (direction differs from the creation direction) -> match; lookup(out, 10.0.0.1:40000 ->
// 10.0.0.2:443) finds node 0 on its forward side but in the wrong direction -> no match.
//
// Invariants (check_invariants()): every in-use node is on exactly its two chains, at the bucket
// of its key hash; free nodes are on the free list only; n_states == number of in-use nodes.
// Complexity: O(1) expected per lookup/insert/remove. Thread-safety: single writer, no readers
// concurrently with writes (the engine owns it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/status.h"

namespace ztb {

struct FlowTuple {
  uint8_t af = 0;
  uint8_t proto = 0;
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint16_t pad = 0;
  uint32_t src[4] = {0, 0, 0, 0};
  uint32_t dst[4] = {0, 0, 0, 0};

  bool operator==(const FlowTuple& o) const;
  FlowTuple reversed() const;
  uint64_t hash() const;
};

// pf default timeouts, milliseconds.
struct Timeouts {
  uint64_t tcp_first = 120'000, tcp_opening = 30'000, tcp_established = 86'400'000,
           tcp_closing = 900'000, tcp_finwait = 45'000, tcp_closed = 90'000;
  uint64_t udp_first = 60'000, udp_single = 30'000, udp_multiple = 60'000;
  uint64_t icmp_first = 20'000, icmp_error = 10'000;
  uint64_t other_first = 60'000, other_single = 30'000, other_multiple = 60'000;
};

// pf's TCPS_* numbering (only the order matters).
enum TcpPeer : uint8_t { kTcpClosed = 0, kTcpSynSent = 2, kTcpEstablished = 4, kTcpClosing = 7, kTcpFinWait2 = 9, kTcpTimeWait = 10 };
enum UdpPeer : uint8_t { kUdpNoTraffic = 0, kUdpSingle, kUdpMultiple };

constexpr int kMaxStateMatchIds = 8;
constexpr uint32_t kNoIndex = 0xffffffffu;

struct State {
  FlowTuple fwd;   // O: the creating packet's tuple before translation
  FlowTuple rev;   // reverse(T): what a reply looks like
  uint32_t ifindex = 0;
  uint8_t dir = 0;  // creation direction, 0 in / 1 out
  uint8_t peer[2] = {0, 0};  // [0] = the side that created the state, [1] = the other side
  uint8_t n_match = 0;
  uint32_t rule_id = kNoIndex;
  uint32_t anchor_rule_id = kNoIndex;
  uint32_t match_ids[kMaxStateMatchIds] = {};
  uint32_t generation = 0;  // ruleset generation the creating rule belongs to
  uint32_t tenant = kNoIndex;
  bool bound = false;  // created under `set state-policy if-bound`: matches on `ifindex` only
  uint64_t seq = 0;    // insertion order: among several matching states the oldest wins
  uint64_t created_ms = 0;
  uint64_t last_ms = 0;
  uint64_t timeout_ms = 0;
  uint64_t packets[2] = {0, 0};  // [0] forward, [1] reply
  uint64_t bytes[2] = {0, 0};
  // Chain links: next[side] = (node << 1 | side) of the next link in the same bucket, or kNoIndex.
  uint32_t next[2] = {kNoIndex, kNoIndex};
  bool in_use = false;

  bool is_translated() const { return !(fwd == rev.reversed()); }
};

struct FlowMatch {
  uint32_t node = kNoIndex;
  bool reply = false;  // matched on the reply key
};

class FlowTable {
 public:
  static constexpr uint32_t kFullSweep = 4096;

  FlowTable(uint32_t capacity, Timeouts timeouts);

  // Readers and writers: one thread at a time (the engine's batch call).
  // Finds the state for a packet: a bound state of this interface first, else the oldest floating
  // one. Dead states met on the way are freed.
  FlowMatch lookup(const FlowTuple& t, uint8_t dir, uint32_t ifindex, uint64_t now_ms);
  // Is there room for one more state? A full table first frees dead states (bounded sweep).
  bool has_room(uint64_t now_ms);
  // pf_state_key_attach's collision test for a new state (creation direction `dir`, forward tuple
  // o, reply tuple rev): a live state of the same direction already owns the same forward tuple or
  // the same reply tuple (unless both are bound to different interfaces). Closed TCP states and
  // dead states met on the way are freed and give way.
  bool collides(const FlowTuple& o, const FlowTuple& rev, uint8_t dir, bool bound, uint32_t ifindex, uint64_t now_ms);
  // Inserts a new state; returns its node, or kNoIndex when the table is full of live states.
  uint32_t insert(const State& s, uint64_t now_ms);
  // Advances the protocol state for a packet that matched `m` and refreshes its timeout.
  void update(const FlowMatch& m, uint8_t tcp_flags, uint32_t length, uint64_t now_ms);
  // Frees at most `budget` dead states; returns how many were freed.
  uint32_t expire(uint64_t now_ms, uint32_t budget);
  void remove(uint32_t node);
  void clear();

  const State& state(uint32_t node) const { return nodes_[node]; }
  State& state(uint32_t node) { return nodes_[node]; }
  uint32_t size() const { return n_states_; }
  uint32_t capacity() const { return capacity_; }
  bool is_dead(const State& s, uint64_t now_ms) const { return now_ms >= s.last_ms + s.timeout_ms; }
  // True when some state, live or dead but not yet freed, has pf wire key keyOf(in, t): the
  // nat-to port search avoids such keys (as the reference evaluator does).
  // A dead (expired, not yet freed) state owns nothing: the reference purges expired states
  // before every packet, so only live states may block a NAT port.
  bool wire_key_used(const FlowTuple& t, uint64_t now_ms) const;
  const Timeouts& timeouts() const { return timeouts_; }
  // Initial protocol state and timeout of a new state for `proto`.
  void init_protocol_state(State& s, uint8_t tcp_flags) const;

  // Called after a state is freed (expiry or removal), for counter bookkeeping.
  void (*on_free)(void* ctx, const State& s) = nullptr;
  void* on_free_ctx = nullptr;

  bool check_invariants() const;

 private:
  uint32_t bucket_of(const FlowTuple& t) const { return static_cast<uint32_t>(t.hash()) & mask_; }
  void link(uint32_t node, int side);
  void unlink(uint32_t node, int side);

  uint32_t capacity_;
  uint32_t mask_;
  Timeouts timeouts_;
  uint64_t next_seq_ = 1;
  std::vector<State> nodes_;
  std::vector<uint32_t> buckets_;
  uint32_t free_head_ = kNoIndex;
  uint32_t n_states_ = 0;
  uint32_t sweep_ = 0;  // expiry cursor over the node pool
};

}  // namespace ztb
