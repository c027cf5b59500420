// Flow table implementation: chained hashing over a preallocated node pool.
#include "core/flow_table.h"

#include <cstring>

namespace ztb {

bool FlowTuple::operator==(const FlowTuple& o) const {
  return af == o.af && proto == o.proto && sport == o.sport && dport == o.dport &&
         std::memcmp(src, o.src, sizeof src) == 0 && std::memcmp(dst, o.dst, sizeof dst) == 0;
}

FlowTuple FlowTuple::reversed() const {
  FlowTuple r = *this;
  r.sport = dport;
  r.dport = sport;
  std::memcpy(r.src, dst, sizeof src);
  std::memcpy(r.dst, src, sizeof dst);
  return r;
}

uint64_t FlowTuple::hash() const {
  // 64-bit mix over the words; directional on purpose (A->B and B->A are different keys).
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t{af} << 8 | proto);
  auto mix = [&h](uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  };
  mix(uint64_t{sport} << 16 | dport);
  for (int i = 0; i < 4; ++i) mix(uint64_t{src[i]} << 32 | dst[i]);
  return h;
}

namespace {
uint32_t pow2_at_least(uint64_t n) {
  uint64_t p = 1;
  while (p < n) p <<= 1;
  return static_cast<uint32_t>(p);
}
}  // namespace

FlowTable::FlowTable(uint32_t capacity, Timeouts timeouts) : capacity_(capacity), timeouts_(timeouts) {
  uint32_t nb = pow2_at_least(uint64_t{capacity} * 2 < 16 ? 16 : uint64_t{capacity} * 2);
  mask_ = nb - 1;
  nodes_.resize(capacity);
  buckets_.assign(nb, kNoIndex);
  clear();
}

void FlowTable::clear() {
  std::fill(buckets_.begin(), buckets_.end(), kNoIndex);
  free_head_ = kNoIndex;
  for (uint32_t i = capacity_; i-- > 0;) {
    nodes_[i] = State{};
    nodes_[i].next[0] = free_head_;
    free_head_ = i;
  }
  n_states_ = 0;
  sweep_ = 0;
}

void FlowTable::link(uint32_t node, int side) {
  State& s = nodes_[node];
  uint32_t b = bucket_of(side == 0 ? s.fwd : s.rev);
  s.next[side] = buckets_[b];
  buckets_[b] = node << 1 | static_cast<uint32_t>(side);
}

void FlowTable::unlink(uint32_t node, int side) {
  State& s = nodes_[node];
  uint32_t b = bucket_of(side == 0 ? s.fwd : s.rev);
  uint32_t want = node << 1 | static_cast<uint32_t>(side);
  uint32_t* prev = &buckets_[b];
  while (*prev != kNoIndex) {
    if (*prev == want) {
      *prev = s.next[side];
      return;
    }
    uint32_t cur = *prev;
    prev = &nodes_[cur >> 1].next[cur & 1];
  }
}

void FlowTable::remove(uint32_t node) {
  State& s = nodes_[node];
  if (!s.in_use) return;
  unlink(node, 0);
  unlink(node, 1);
  if (on_free) on_free(on_free_ctx, s);
  s = State{};
  s.next[0] = free_head_;
  free_head_ = node;
  --n_states_;
}

FlowMatch FlowTable::lookup(const FlowTuple& t, uint8_t dir, uint32_t ifindex, uint64_t now_ms) {
  FlowMatch bound_best, floating_best;
  uint64_t bound_seq = ~uint64_t{0}, floating_seq = ~uint64_t{0};
  uint32_t link_id = buckets_[bucket_of(t)];
  while (link_id != kNoIndex) {
    uint32_t node = link_id >> 1;
    int side = static_cast<int>(link_id & 1);
    State& s = nodes_[node];
    uint32_t next = s.next[side];
    // Forward side matches only in the creation direction, the reply side only in the other.
    bool dir_ok = side == 0 ? dir == s.dir : dir != s.dir;
    if (dir_ok && (side == 0 ? s.fwd == t : s.rev == t)) {
      if (is_dead(s, now_ms)) {
        // Dead: free it and rescan the bucket (a live twin may exist). Rescanning, not following
        // `next`: that may be this very node's other link, which remove() just reused.
        remove(node);
        bound_best = floating_best = FlowMatch{};
        bound_seq = floating_seq = ~uint64_t{0};
        link_id = buckets_[bucket_of(t)];
        continue;
      } else if (s.bound) {
        if (s.ifindex == ifindex && s.seq < bound_seq) { bound_seq = s.seq; bound_best = FlowMatch{node, side == 1}; }
      } else if (s.seq < floating_seq) {
        floating_seq = s.seq;
        floating_best = FlowMatch{node, side == 1};
      }
    }
    link_id = next;
  }
  return bound_best.node != kNoIndex ? bound_best : floating_best;
}

bool FlowTable::has_room(uint64_t now_ms) {
  if (free_head_ != kNoIndex) return true;
  uint32_t budget = capacity_ < kFullSweep ? capacity_ : kFullSweep;
  expire(now_ms, budget);
  return free_head_ != kNoIndex;
}

bool FlowTable::collides(const FlowTuple& o, const FlowTuple& rev, uint8_t dir, bool bound, uint32_t ifindex,
                         uint64_t now_ms) {
  for (int side = 0; side < 2; ++side) {
    const FlowTuple& t = side == 0 ? o : rev;
    uint32_t link_id = buckets_[bucket_of(t)];
    while (link_id != kNoIndex) {
      uint32_t node = link_id >> 1;
      int s_side = static_cast<int>(link_id & 1);
      State& s = nodes_[node];
      uint32_t next = s.next[s_side];
      if (s_side == side && (side == 0 ? s.fwd == t : s.rev == t)) {
        bool closed = s.fwd.proto == 6 && s.peer[0] >= kTcpFinWait2 && s.peer[1] >= kTcpFinWait2;
        bool same = s.dir == dir && !(s.bound && bound && s.ifindex != ifindex);
        if (is_dead(s, now_ms) || (same && closed)) {
          remove(node);  // dead, or a fully closed connection giving way: rescan (see lookup)
          link_id = buckets_[bucket_of(t)];
          continue;
        }
        if (same) return true;
      }
      link_id = next;
    }
  }
  return false;
}

bool FlowTable::wire_key_used(const FlowTuple& t, uint64_t now_ms) const {
  // keyOf(in, t) is the wire key of in-states created by t and of out-states answered by t.
  for (uint32_t l = buckets_[bucket_of(t)]; l != kNoIndex;) {
    const State& s = nodes_[l >> 1];
    int side = static_cast<int>(l & 1);
    if ((side == 0 ? s.dir == 0 && s.fwd == t : s.dir == 1 && s.rev == t) && !is_dead(s, now_ms)) return true;
    l = s.next[side];
  }
  return false;
}

uint32_t FlowTable::insert(const State& init, uint64_t now_ms) {
  if (!has_room(now_ms)) return kNoIndex;
  uint32_t node = free_head_;
  free_head_ = nodes_[node].next[0];
  State& s = nodes_[node];
  s = init;
  s.in_use = true;
  s.created_ms = now_ms;
  s.last_ms = now_ms;
  s.next[0] = s.next[1] = kNoIndex;
  s.seq = next_seq_++;
  link(node, 0);
  link(node, 1);
  ++n_states_;
  return node;
}

uint32_t FlowTable::expire(uint64_t now_ms, uint32_t budget) {
  // `budget` bounds the nodes visited, so the cost per call is fixed whatever the table holds.
  uint32_t freed = 0;
  if (capacity_ == 0 || n_states_ == 0) return 0;
  if (budget > capacity_) budget = capacity_;  // one full pass is the most there is to do
  for (uint32_t i = 0; i < budget; ++i) {
    uint32_t node = sweep_;
    sweep_ = sweep_ + 1 == capacity_ ? 0 : sweep_ + 1;
    State& s = nodes_[node];
    if (s.in_use && is_dead(s, now_ms)) {
      remove(node);
      ++freed;
    }
  }
  return freed;
}

void FlowTable::init_protocol_state(State& s, uint8_t tcp_flags) const {
  switch (s.fwd.proto) {
    case 6:
      s.peer[0] = kTcpSynSent;
      s.peer[1] = kTcpClosed;
      s.timeout_ms = timeouts_.tcp_first;
      break;
    case 17:
      s.peer[0] = kUdpSingle;
      s.peer[1] = kUdpNoTraffic;
      s.timeout_ms = timeouts_.udp_first;
      break;
    case 1:
    case 58:
      s.timeout_ms = timeouts_.icmp_first;
      break;
    default:
      s.peer[0] = kUdpSingle;
      s.peer[1] = kUdpNoTraffic;
      s.timeout_ms = timeouts_.other_first;
      break;
  }
}

void FlowTable::update(const FlowMatch& m, uint8_t flags, uint32_t length, uint64_t now_ms) {
  State& s = nodes_[m.node];
  int from = m.reply ? 1 : 0;
  s.packets[from] += 1;
  s.bytes[from] += length;
  s.last_ms = now_ms;
  uint8_t& src = s.peer[from];
  uint8_t& dst = s.peer[1 - from];
  switch (s.fwd.proto) {
    case 6: {
      // Flags only, no sequence windows (the first packet of a side makes it SYN_SENT).
      if (src < kTcpSynSent) src = kTcpSynSent;
      if ((flags & 0x01) && src < kTcpClosing) src = kTcpClosing;
      if (flags & 0x10) {
        if (dst == kTcpSynSent) dst = kTcpEstablished;
        else if (dst == kTcpClosing) dst = kTcpFinWait2;
      }
      if (flags & 0x04) src = dst = kTcpTimeWait;
      const Timeouts& t = timeouts_;
      if (src >= kTcpFinWait2 && dst >= kTcpFinWait2) s.timeout_ms = t.tcp_closed;
      else if (src >= kTcpClosing && dst >= kTcpClosing) s.timeout_ms = t.tcp_finwait;
      else if (src < kTcpEstablished || dst < kTcpEstablished) s.timeout_ms = t.tcp_opening;
      else if (src >= kTcpClosing || dst >= kTcpClosing) s.timeout_ms = t.tcp_closing;
      else s.timeout_ms = t.tcp_established;
      break;
    }
    case 1:
    case 58:
      s.timeout_ms = timeouts_.icmp_error;
      break;
    default: {
      bool udp = s.fwd.proto == 17;
      if (src < kUdpSingle) src = kUdpSingle;
      if (dst == kUdpSingle) dst = kUdpMultiple;
      bool multi = src == kUdpMultiple && dst == kUdpMultiple;
      s.timeout_ms = udp ? (multi ? timeouts_.udp_multiple : timeouts_.udp_single)
                         : (multi ? timeouts_.other_multiple : timeouts_.other_single);
      break;
    }
  }
}

bool FlowTable::check_invariants() const {
  std::vector<uint8_t> seen(capacity_, 0);
  uint32_t in_use = 0;
  for (uint32_t i = 0; i < capacity_; ++i) in_use += nodes_[i].in_use ? 1 : 0;
  if (in_use != n_states_) return false;
  // Every chain link points to an in-use node whose key hashes to this bucket.
  uint64_t links = 0;
  for (uint32_t b = 0; b < buckets_.size(); ++b) {
    uint32_t l = buckets_[b];
    uint64_t guard = 0;
    while (l != kNoIndex) {
      uint32_t node = l >> 1;
      int side = static_cast<int>(l & 1);
      if (node >= capacity_ || !nodes_[node].in_use) return false;
      if (bucket_of(side == 0 ? nodes_[node].fwd : nodes_[node].rev) != b) return false;
      if (seen[node] & (1u << side)) return false;
      seen[node] |= static_cast<uint8_t>(1u << side);
      ++links;
      if (++guard > 2ull * capacity_) return false;
      l = nodes_[node].next[side];
    }
  }
  if (links != 2ull * n_states_) return false;
  // The free list holds exactly the unused nodes.
  uint32_t n_free = 0;
  for (uint32_t f = free_head_; f != kNoIndex; f = nodes_[f].next[0]) {
    if (f >= capacity_ || nodes_[f].in_use || seen[f]) return false;
    seen[f] = 4;
    if (++n_free > capacity_) return false;
  }
  return n_free + n_states_ == capacity_;
}

}  // namespace ztb
