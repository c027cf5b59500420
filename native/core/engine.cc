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
  d[14] = k.has_icmp ? (uint32_t{k.icmp_type} << 8 | k.icmp_code) : kNoIcmp;
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

bool apply_translation(const Program& p, const Translation& t, uint32_t rr, PacketKey& k) {
  // The pool holds the addresses of every family; pick among those of the packet's family.
  uint32_t n_af = 0;
  for (uint32_t i = 0; i < t.pool_cnt; ++i) n_af += p.pool[t.pool_off + i].af == k.af ? 1 : 0;
  if (n_af == 0) return false;
  uint32_t want = rr % n_af;
  const PoolAddr* a = nullptr;
  for (uint32_t i = 0; i < t.pool_cnt; ++i) {
    const PoolAddr& c = p.pool[t.pool_off + i];
    if (c.af != k.af) continue;
    if (want-- == 0) { a = &c; break; }
  }
  if (t.kind == 0) {
    std::memcpy(k.src, a->w, sizeof k.src);
  } else {
    std::memcpy(k.dst, a->w, sizeof k.dst);
    if (t.port_lo != 0 && k.has_ports) k.dport = static_cast<uint16_t>(t.port_lo);
  }
  return true;
}

}  // namespace ztb
