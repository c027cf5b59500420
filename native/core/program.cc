// Program build: validation of the wire format and the conjoined classifier boxes.
#include "core/program.h"

#include <algorithm>

namespace ztb {

namespace {

Status bad(const std::string& what) { return Status(Errc::kInvalidArgument, "compiled program: " + what); }

bool intersect(const BoxRule& a, const BoxRule& b, BoxRule* out) {
  for (int d = 0; d < kDims; ++d) {
    uint32_t lo = std::max(a.dims[d].lo, b.dims[d].lo);
    uint32_t hi = std::min(a.dims[d].hi, b.dims[d].hi);
    if (lo > hi) return false;
    out->dims[d] = Range{lo, hi};
  }
  return true;
}

}  // namespace

bool Program::is_skipped(uint32_t ifindex) const {
  return !skip.empty() && std::binary_search(skip.begin(), skip.end(), ifindex);
}

Result<std::shared_ptr<Program>> Program::build(const ProgramInput& in) {
  auto p = std::make_shared<Program>();
  p->n_rules = in.n_rules;
  p->n_tenants = in.n_tenants;
  p->flags = in.flags;
  if (in.n_rules > (1u << 24)) return bad("too many rules");
  if (in.n_tenants > 65535) return bad("too many tenants");
  if (in.entries.size() % kEntryWords || in.instances.size() % kInstanceWords ||
      in.boxes.size() % kBoxWords || in.translations.size() % kTranslationWords ||
      in.pool.size() % kPoolWords || in.tenant_ifaces.size() % 2 || in.tenant_vlans.size() % 2 ||
      in.tenant_vnis.size() % 2 || in.tenant_prefixes.size() % kTenantPrefixWords) {
    return bad("an array length is not a multiple of its record size");
  }
  if (in.rule_tenant.size() != in.n_rules) return bad("ruleTenant length != number of rules");
  size_t n_boxes = in.boxes.size() / kBoxWords;
  if (n_boxes > in.max_boxes) return Status(Errc::kLimit, "compiled program: too many boxes");
  p->own_boxes.resize(n_boxes);
  for (size_t b = 0; b < n_boxes; ++b) {
    const uint32_t* w = &in.boxes[b * kBoxWords];
    for (int d = 0; d < kDims; ++d) {
      if (w[2 * d] > w[2 * d + 1]) return bad("box " + std::to_string(b) + " has an empty range");
      p->own_boxes[b].dims[d] = Range{w[2 * d], w[2 * d + 1]};
    }
  }
  auto box_range_ok = [&](uint32_t off, uint32_t cnt) { return off <= n_boxes && cnt <= n_boxes - off; };

  if (in.walk.size() % kWalkWords || in.walk_boxes.size() % kBoxWords) return bad("walk arrays have a bad length");
  const size_t n_wboxes = in.walk_boxes.size() / kBoxWords;
  if (n_wboxes > in.max_boxes) return Status(Errc::kLimit, "compiled program: too many walk boxes");
  p->walk_boxes.resize(n_wboxes);
  for (size_t b = 0; b < n_wboxes; ++b) {
    const uint32_t* w = &in.walk_boxes[b * kBoxWords];
    for (int d = 0; d < kDims; ++d) {
      if (w[2 * d] > w[2 * d + 1]) return bad("walk box " + std::to_string(b) + " has an empty range");
      p->walk_boxes[b].dims[d] = Range{w[2 * d], w[2 * d + 1]};
    }
  }

  size_t n_pool = in.pool.size() / kPoolWords;
  for (size_t i = 0; i < n_pool; ++i) {
    const uint32_t* w = &in.pool[i * kPoolWords];
    if (w[0] != 4 && w[0] != 6) return bad("pool address with a bad family");
    p->pool.push_back(PoolAddr{static_cast<uint8_t>(w[0]), {w[1], w[2], w[3], w[4]}});
  }
  size_t n_tr = in.translations.size() / kTranslationWords;
  for (size_t i = 0; i < n_tr; ++i) {
    const uint32_t* w = &in.translations[i * kTranslationWords];
    if (w[0] > 1 || w[1] > n_pool || w[2] > n_pool - w[1] || w[3] > w[4] || w[4] > 65535 || w[5] > 3 || w[6] > 65535) {
      return bad("translation " + std::to_string(i) + " is invalid");
    }
    p->translations.push_back(Translation{static_cast<uint8_t>(w[0]), w[1], w[2], w[3], w[4], w[5], w[6]});
  }

  size_t n_inst = in.instances.size() / kInstanceWords;
  size_t n_entries = in.entries.size() / kEntryWords;
  for (size_t i = 0; i < n_inst; ++i) {
    const uint32_t* w = &in.instances[i * kInstanceWords];
    Instance x{w[0], w[1], w[2], w[3], static_cast<uint8_t>(w[4] & 0xff), static_cast<uint8_t>((w[4] >> 8) & 0xff),
               w[5]};
    if (x.start > x.end || x.end > n_entries || !box_range_ok(x.box_off, x.box_cnt)) {
      return bad("anchor instance " + std::to_string(i) + " is out of range");
    }
    if (i > 0 && x.start < p->instances.back().start) return bad("anchor instances are not in walk order");
    p->instances.push_back(x);
  }
  p->chains.assign(in.chains.begin(), in.chains.end());
  for (uint32_t c : p->chains) {
    if (c >= n_inst) return bad("anchor chain names a missing instance");
  }
  for (size_t i = 0; i < n_entries; ++i) {
    const uint32_t* w = &in.entries[i * kEntryWords];
    Entry e{w[0], static_cast<EntryKind>(w[1]), w[2], w[3], w[4], static_cast<uint8_t>(w[5] & 0xff),
            static_cast<uint8_t>((w[5] >> 8) & 0xff), w[6], w[7], w[8], w[9], w[10], w[11]};
    if (e.rule_id >= in.n_rules || w[1] > 3) return bad("entry " + std::to_string(i) + " has a bad rule or kind");
    if (e.anchor_rule_id != kNone && e.anchor_rule_id >= in.n_rules) return bad("entry anchor rule out of range");
    if (e.quick_end != kNone && (e.quick_end <= i || e.quick_end > n_entries)) return bad("entry quick end out of range");
    if ((e.nat != kNone && e.nat >= n_tr) || (e.rdr != kNone && e.rdr >= n_tr)) return bad("entry translation out of range");
    if (!box_range_ok(e.box_off, e.box_cnt)) return bad("entry boxes out of range");
    if (e.chain_off > p->chains.size() || e.chain_cnt > p->chains.size() - e.chain_off) {
      return bad("entry chain out of range");
    }
    for (uint32_t c = 0; c < e.chain_cnt; ++c) {
      const Instance& x = p->instances[p->chains[e.chain_off + c]];
      if (i < x.start || i >= x.end) return bad("entry " + std::to_string(i) + " is outside an anchor on its chain");
    }
    p->entries.push_back(e);
  }

  // Walk steps: every target forward and in range (the replay always terminates).
  const size_t n_steps = in.walk.size() / kWalkWords;
  for (size_t i = 0; i < n_steps; ++i) {
    const uint32_t* w = &in.walk[i * kWalkWords];
    WalkStep s{};
    s.rule_id = w[0];
    s.is_anchor = static_cast<uint8_t>(w[1]);
    s.ref = w[2];
    s.end = w[3];
    s.quick_end_step = w[4];
    s.tcp_bits = static_cast<uint8_t>(w[5] & 0xff);
    s.tcp_mask = static_cast<uint8_t>((w[5] >> 8) & 0xff);
    bool ok = w[0] < in.n_rules && w[1] <= 1 && (w[1] == 1 ? w[2] < n_inst : w[2] < n_entries) &&
              w[3] > i && w[3] <= n_steps && (w[1] == 1 || w[3] == i + 1) &&
              (w[4] == kNone || (w[4] > i && w[4] <= n_steps));
    for (int c = 0; c < kWalkSkips && ok; ++c) {
      s.skip[c] = w[6 + c];
      ok = s.skip[c] > i && s.skip[c] <= n_steps;
    }
    for (int c = 0; c < kWalkCrits && ok; ++c) {
      s.crit_off[c] = w[14 + 2 * c];
      s.crit_cnt[c] = w[15 + 2 * c];
      ok = s.crit_cnt[c] == kNone || (s.crit_off[c] <= n_wboxes && s.crit_cnt[c] <= n_wboxes - s.crit_off[c]);
    }
    if (!ok) return bad("walk step " + std::to_string(i) + " is out of range");
    p->walk.push_back(s);
  }

  // Conjoined boxes: own x every gate on the chain (pairwise intersections, empty ones dropped).
  std::vector<BoxRule> cur, next;
  for (size_t i = 0; i < n_entries; ++i) {
    const Entry& e = p->entries[i];
    cur.assign(p->own_boxes.begin() + e.box_off, p->own_boxes.begin() + e.box_off + e.box_cnt);
    for (uint32_t c = 0; c < e.chain_cnt && !cur.empty(); ++c) {
      const Instance& x = p->instances[p->chains[e.chain_off + c]];
      next.clear();
      for (const BoxRule& a : cur) {
        for (uint32_t g = 0; g < x.box_cnt; ++g) {
          BoxRule r;
          if (intersect(a, p->own_boxes[x.box_off + g], &r)) next.push_back(r);
          if (next.size() + p->class_boxes.size() > in.max_boxes) {
            return Status(Errc::kLimit, "compiled program: anchor criteria expand to more than " +
                                            std::to_string(in.max_boxes) + " boxes");
          }
        }
      }
      cur.swap(next);
    }
    for (BoxRule& b : cur) {
      b.priority = static_cast<uint32_t>(i);
      b.value = static_cast<uint32_t>(i);
      p->class_boxes.push_back(b);
    }
    if (p->class_boxes.size() > in.max_boxes) return Status(Errc::kLimit, "compiled program: too many boxes");
  }

  p->skip.assign(in.skip.begin(), in.skip.end());
  std::sort(p->skip.begin(), p->skip.end());
  auto tenant_ok = [&](uint32_t t) { return t < in.n_tenants; };
  for (size_t i = 0; i < in.tenant_ifaces.size(); i += 2) {
    if (!tenant_ok(in.tenant_ifaces[i + 1])) return bad("tenant interface map names a missing tenant");
    p->tenant_by_iface.emplace(in.tenant_ifaces[i], in.tenant_ifaces[i + 1]);
  }
  p->tenant_by_vlan.assign(4096, kNone);
  for (size_t i = 0; i < in.tenant_vlans.size(); i += 2) {
    if (in.tenant_vlans[i] > 4095 || !tenant_ok(in.tenant_vlans[i + 1])) return bad("tenant VLAN map is invalid");
    if (p->tenant_by_vlan[in.tenant_vlans[i]] == kNone) p->tenant_by_vlan[in.tenant_vlans[i]] = in.tenant_vlans[i + 1];
  }
  for (size_t i = 0; i < in.tenant_vnis.size(); i += 2) {
    if (in.tenant_vnis[i] > 0xffffff || !tenant_ok(in.tenant_vnis[i + 1])) return bad("tenant VNI map is invalid");
    p->tenant_by_vni.emplace(in.tenant_vnis[i], in.tenant_vnis[i + 1]);
  }
  for (size_t i = 0; i < in.tenant_prefixes.size(); i += kTenantPrefixWords) {
    const uint32_t* w = &in.tenant_prefixes[i];
    if (!tenant_ok(w[6]) || !p->tenant_prefixes.add(static_cast<uint8_t>(w[0]), w + 1, w[5], w[6])) {
      return bad("tenant prefix is invalid");
    }
  }
  p->tenant_prefixes.finish();
  for (uint32_t t : in.rule_tenant) {
    if (t != kNone && !tenant_ok(t)) return bad("rule tenant out of range");
  }
  p->rule_tenant.assign(in.rule_tenant.begin(), in.rule_tenant.end());
  p->rr.assign(in.n_rules, 0);
  p->rule_counters = std::make_unique<RuleCounters[]>(in.n_rules == 0 ? 1 : in.n_rules);
  p->tenant_counters = std::make_unique<TenantCounters[]>(in.n_tenants == 0 ? 1 : in.n_tenants);
  return p;
}

bool Program::check_invariants() const {
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].quick_end != kNone && entries[i].quick_end <= i) return false;
  }
  // Instances nest: two instances either are disjoint or one contains the other.
  for (size_t a = 0; a < instances.size(); ++a) {
    for (size_t b = a + 1; b < instances.size() && instances[b].start < instances[a].end; ++b) {
      if (instances[b].end > instances[a].end) return false;
    }
  }
  for (size_t i = 1; i < class_boxes.size(); ++i) {
    if (class_boxes[i].priority < class_boxes[i - 1].priority) return false;
  }
  return true;
}

}  // namespace ztb
