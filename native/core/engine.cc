// Engine helpers shared by every classifier instantiation: key dimensions and translations.
#include "core/engine.h"

#include <cstring>

namespace ztb {

void key_dims(const PacketKey& k, uint32_t* d) {
  d[0] = k.ifindex;
  d[1] = k.dir;
  d[2] = k.af;
  d[3] = k.proto;
  for (int i = 0; i < 4; ++i) {
    d[4 + i] = k.src[i];
    d[8 + i] = k.dst[i];
  }
  d[12] = k.has_ports ? k.sport : kNoPort;
  d[13] = k.has_ports ? k.dport : kNoPort;
  d[14] = k.has_icmp ? (uint32_t{k.icmp_type} * 512 + (k.icmp_code_known ? k.icmp_code : 256u)) : kNoIcmp;
}

FlowTuple tuple_of(const PacketKey& k) {
  FlowTuple t;
  t.af = k.af;
  t.proto = k.proto;
  t.sport = k.sport;
  t.dport = k.dport;
  std::memcpy(t.src, k.src, sizeof t.src);
  std::memcpy(t.dst, k.dst, sizeof t.dst);
  return t;
}

FlowTuple state_key(const PacketKey& k) {
  FlowTuple t = tuple_of(k);
  // pf keys ICMP states on the query id for both ports (the reference's keyOf does the same).
  if (k.proto == 1 || k.proto == 58) t.dport = t.sport;
  return t;
}

const PoolAddr* pick_pool_addr(const Program& p, const Translation& t, uint32_t rule_id, uint8_t af) {
  // The pool holds the addresses of every family in written order; pick among the packet's.
  uint32_t n_af = 0;
  for (uint32_t i = 0; i < t.pool_cnt; ++i) n_af += p.pool[t.pool_off + i].af == af ? 1 : 0;
  if (n_af == 0) return nullptr;
  uint32_t want = 0;
  if (n_af > 1) want = p.rr[rule_id]++ % n_af;  // round-robin only over real pools
  for (uint32_t i = 0; i < t.pool_cnt; ++i) {
    const PoolAddr& c = p.pool[t.pool_off + i];
    if (c.af != af) continue;
    if (want-- == 0) return &c;
  }
  return nullptr;
}

}  // namespace ztb
