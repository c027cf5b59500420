// Engine template bodies (included by engine.h only).
#pragma once

#include <cstring>

namespace ztb {

template <class C>
bool Engine<C>::translate(const Program& p, const Entry& e, PacketKey& k) {
  // rdr-to first, then nat-to (the reference evaluator's order).
  if (e.rdr != kNone) {
    const Translation& t = p.translations[e.rdr];
    const PoolAddr* a = pick_pool_addr(p, t, e.rule_id, k.af);
    if (!a) return false;
    std::memcpy(k.dst, a->w, sizeof k.dst);
    if ((t.flags & kXlatHasPort) && k.has_ports) {
      if (t.port_hi > t.port_lo && (t.flags & kXlatRuleHasDport)) {
        // A port range maps by offset from the rule's first destination port.
        int64_t span = int64_t{t.port_hi} - t.port_lo + 1;
        int64_t off = ((int64_t{k.dport} - t.rule_dport_lo) % span + span) % span;
        k.dport = static_cast<uint16_t>(off + t.port_lo);
      } else {
        k.dport = static_cast<uint16_t>(t.port_lo);
      }
    }
  }
  if (e.nat != kNone) {
    const Translation& t = p.translations[e.nat];
    const PoolAddr* a = pick_pool_addr(p, t, e.rule_id, k.af);
    if (!a) return false;
    std::memcpy(k.src, a->w, sizeof k.src);
    if (k.has_ports) {
      // The lowest proxy port whose wire key no state uses (pf picks at random; the oracle and we
      // pick the lowest so runs are reproducible). Bounded: at most 15535 hash probes.
      FlowTuple t2 = tuple_of(k);
      uint16_t chosen = kNatPortLo;
      for (uint32_t port = kNatPortLo; port <= kNatPortHi; ++port) {
        t2.sport = static_cast<uint16_t>(port);
        FlowTuple probe = k.dir == 1 ? t2.reversed() : t2;
        if (!flows_.wire_key_used(probe, now_ms_)) {
          chosen = static_cast<uint16_t>(port);
          break;
        }
      }
      k.sport = chosen;
    }
  }
  return true;
}

template <class C>
bool Engine<C>::visit(const Program& p, uint32_t i, PacketKey& k, uint32_t* dims, WalkState& w,
                      bool* on_translate) {
  // Invariant: the decision's quick_end is the end of the quick anchor it sits directly in; once
  // the walk passes it with that decision still standing, pf stops the whole evaluation.
  if (w.decision != kNone && i >= p.entries[w.decision].quick_end) {
    w.stopped = true;
    return false;
  }
  const Entry& e = p.entries[i];
  if (!flags_ok(e.tcp_bits, e.tcp_mask, k)) return true;
  for (uint32_t c = 0; c < e.chain_cnt; ++c) {
    const Instance& x = p.instances[p.chains[e.chain_off + c]];
    if (!flags_ok(x.tcp_bits, x.tcp_mask, k)) return true;
  }
  p.rule_counters[e.rule_id].matches.add(1);
  switch (e.kind) {
    case EntryKind::kMatch: {
      if (e.nat != kNone || e.rdr != kNone) {
        FlowTuple before = tuple_of(k);
        if (!translate(p, e, k)) {
          w.fail = i;
          w.stopped = true;
          return false;
        }
        if (!(tuple_of(k) == before)) {
          if (opts_.count_evaluations) {
            if (w.n_xlat < kMaxWalkXlats) {
              w.xlat_entry[w.n_xlat] = i;
              auto& x = w.xlat_key[w.n_xlat++];
              std::memcpy(x.src, k.src, sizeof x.src);
              std::memcpy(x.dst, k.dst, sizeof x.dst);
              x.sport = k.sport;
              x.dport = k.dport;
            } else {
              w.xlat_overflow = true;
            }
          }
          w.translated = true;
          key_dims(k, dims);
          *on_translate = true;
        }
      }
      if (w.n_match < kMaxMatchIds) w.match_ids[w.n_match++] = e.rule_id;
      if (e.flags & kEntryQuick) {
        w.stopped = true;
        return false;
      }
      return true;
    }
    case EntryKind::kPass:
    case EntryKind::kBlock:
      w.decision = i;
      if (e.flags & kEntryQuick) {
        w.stopped = true;
        return false;
      }
      return true;
    case EntryKind::kDepthDrop:
      w.fail = i;
      w.stopped = true;
      return false;
  }
  return true;
}

template <class C>
void Engine<C>::walk_classifier(const Ruleset<C>& rs, PacketKey& k, WalkState& w) {
  const Program& p = *rs.program;
  uint32_t dims[kDims];
  key_dims(k, dims);
  uint32_t resume = kNone;
  PacketKey before;
  uint32_t last = kNone;
  rs.classifier.for_each_match(dims, 0, [&](uint32_t, uint32_t i) {
    // An entry with several boxes is reported once per matching box; they are adjacent.
    if (i == last) return true;
    last = i;
    bool translated = false;
    before = k;
    if (!visit(p, i, k, dims, w, &translated)) return false;
    if (translated) {
      resume = i + 1;
      return false;
    }
    return true;
  });
  if (resume != kNone) walk_linear(p, resume, before, k, w);
}

template <class C>
void Engine<C>::walk_linear(const Program& p, uint32_t from, const PacketKey& gate_key, PacketKey& k,
                            WalkState& w) {
  const size_t n_inst = p.instances.size();
  if (gate_.size() < n_inst) gate_.resize(n_inst);  // grows once per ruleset size, not per packet
  uint32_t dims[kDims];
  key_dims(gate_key, dims);
  size_t xi = 0;
  // Anchors entered before `from` were tested when the walk reached them, i.e. on gate_key.
  for (; xi < n_inst && p.instances[xi].start < from; ++xi) {
    const Instance& x = p.instances[xi];
    gate_[xi] = x.end > from && p.boxes_contain(x.box_off, x.box_cnt, dims) &&
                flags_ok(x.tcp_bits, x.tcp_mask, gate_key);
  }
  key_dims(k, dims);
  const uint32_t n = static_cast<uint32_t>(p.entries.size());
  for (uint32_t i = from; i < n; ++i) {
    while (xi < n_inst && p.instances[xi].start <= i) {
      const Instance& x = p.instances[xi];
      gate_[xi] = p.boxes_contain(x.box_off, x.box_cnt, dims) && flags_ok(x.tcp_bits, x.tcp_mask, k);
      ++xi;
    }
    const Entry& e = p.entries[i];
    bool open = true;
    for (uint32_t c = 0; c < e.chain_cnt && open; ++c) open = gate_[p.chains[e.chain_off + c]];
    if (!open || !p.boxes_contain(e.box_off, e.box_cnt, dims)) continue;
    bool translated = false;
    if (!visit(p, i, k, dims, w, &translated)) return;
  }
}

template <class C>
void Engine<C>::count_evaluations(const Program& p, PacketKey k, const WalkState& w) {
  // Past kMaxWalkXlats key changes the replay could not know the key: count nothing rather than
  // count wrong (docs/engine.md).
  if (p.walk.empty() || w.xlat_overflow) return;
  uint32_t dims[kDims];
  key_dims(k, dims);
  uint32_t decision_step = kNone;
  int next_xlat = 0;
  const uint32_t n = static_cast<uint32_t>(p.walk.size());
  constexpr int kFailNext = kWalkSkips;
  uint32_t i = 0;
  while (i < n) {
    // pf stops at the end of a quick anchor whose direct rule made the standing decision.
    if (decision_step != kNone && i >= p.walk[decision_step].quick_end_step) return;
    const WalkStep& s = p.walk[i];
    p.rule_counters[s.rule_id].evaluations.add(1);
    // pf_match_rule's order: iface, dir, af, proto, src, dst, TCP flags, sport, dport, icmp type.
    int failed = -1;
    for (int c = 0; c < 6 && failed < 0; ++c) {
      if (!p.walk_crit_ok(s, c, dims)) failed = c;
    }
    if (failed < 0 && !flags_ok(s.tcp_bits, s.tcp_mask, k)) failed = kFailNext;
    for (int c = 6; c < 8 && failed < 0; ++c) {
      if (!p.walk_crit_ok(s, c, dims)) failed = c;
    }
    if (failed < 0 && !p.walk_crit_ok(s, 8, dims)) failed = kFailNext;
    if (failed >= 0) {
      i = failed == kFailNext ? s.end : s.skip[failed];
      continue;
    }
    if (s.is_anchor) {  // matched: its content follows in walk order
      ++i;
      continue;
    }
    const Entry& e = p.entries[s.ref];
    switch (e.kind) {
      case EntryKind::kMatch:
        if (w.fail == s.ref) return;
        if (next_xlat < w.n_xlat && w.xlat_entry[next_xlat] == s.ref) {
          const auto& x = w.xlat_key[next_xlat++];
          std::memcpy(k.src, x.src, sizeof k.src);
          std::memcpy(k.dst, x.dst, sizeof k.dst);
          k.sport = x.sport;
          k.dport = x.dport;
          key_dims(k, dims);
        }
        if (e.flags & kEntryQuick) return;
        break;
      case EntryKind::kPass:
      case EntryKind::kBlock:
        decision_step = i;
        if (e.flags & kEntryQuick) return;
        break;
      case EntryKind::kDepthDrop:
        return;
    }
    ++i;
  }
}

template <class C>
uint32_t Engine<C>::classify_tenant(const Program& p, const PacketKey& k) const {
  if (p.flags & kProgramTenantByAnchor) return kNone;  // decided by the deciding rule instead
  if (!p.tenant_by_iface.empty()) {
    auto it = p.tenant_by_iface.find(k.ifindex);
    if (it != p.tenant_by_iface.end()) return it->second;
  }
  if (k.has_vlan && p.tenant_by_vlan[k.vlan] != kNone) return p.tenant_by_vlan[k.vlan];
  if (k.has_vni && !p.tenant_by_vni.empty()) {
    auto it = p.tenant_by_vni.find(k.vni);
    if (it != p.tenant_by_vni.end()) return it->second;
  }
  return p.tenant_prefixes.lookup(k.af, k.dir == 0 ? k.src : k.dst);
}

template <class C>
void Engine<C>::process(PacketKey k, uint64_t now_ms, Verdict* v) {
  *v = Verdict{};
  now_ms_ = now_ms;
  counters_.packets.add(1);
  counters_.bytes.add(k.length);
  auto finish = [&](Reason r) { v->reason = r; counters_.reasons[static_cast<int>(r)].add(1); };
  if (k.non_ip) return finish(Reason::kNonIp);
  if (k.malformed != MalformedReason::kNone) {
    v->block = 1;
    counters_.malformed[static_cast<int>(k.malformed)].add(1);
    return finish(Reason::kMalformed);
  }
  const Program* p = current_ ? current_->program.get() : nullptr;
  const bool by_anchor = p && (p->flags & kProgramTenantByAnchor);
  const uint32_t pkt_tenant = p ? classify_tenant(*p, k) : kNone;
  if (p && p->is_skipped(k.ifindex)) {
    v->tenant = by_anchor ? kNone : pkt_tenant;  // reported, but nothing is counted
    return finish(Reason::kSkip);
  }
  auto rule_tenant = [&](uint32_t rule) { return by_anchor ? p->rule_tenant[rule] : pkt_tenant; };
  auto count_tenant = [&]() {
    if (p && v->tenant != kNone && v->tenant < p->n_tenants) {
      TenantCounters& t = p->tenant_counters[v->tenant];
      t.packets.add(1);
      t.bytes.add(k.length);
      if (v->block) t.blocked.add(1);
    }
  };

  // Normalisation (pf_normalize_*), before the state lookup.
  bool drop = k.proto == 17 && k.has_ports && k.dport == 0;
  if (k.proto == 6 && k.has_ports) {
    uint8_t f = k.tcp_flags;
    if (f & 0x02) {
      if (f & 0x04) drop = true;
      f &= static_cast<uint8_t>(~0x01);
    } else if (!(f & (0x10 | 0x04))) {
      drop = true;
    }
    if (!(f & 0x10) && (f & (0x01 | 0x08 | 0x20))) drop = true;
    k.tcp_flags = f;
  }
  if (drop) {
    v->block = 1;
    v->tenant = by_anchor ? kNone : pkt_tenant;
    count_tenant();
    return finish(Reason::kNormalize);
  }
  const int dir = k.dir ? 1 : 0;
  // pf counts a decided packet on its rule and anchor rule; match rules count only through a
  // state (the creating packet and the state's later traffic).
  auto count_rules = [&](const Program& prog, uint32_t rule, uint32_t anchor, const uint32_t* ids, int n) {
    auto add = [&](uint32_t r) {
      if (r == kNone || r >= prog.n_rules) return;
      prog.rule_counters[r].packets[dir].add(1);
      prog.rule_counters[r].bytes[dir].add(k.length);
    };
    add(rule);
    add(anchor);
    for (int i = 0; i < n; ++i) add(ids[i]);
  };

  // State lookup first. ICMP errors belong to the state of the packet they quote, which this key
  // does not carry: like the reference evaluator, they never match nor create a state.
  const bool icmp = k.proto == 1 || k.proto == 58;
  const bool icmp_error = k.has_icmp && icmp_is_error(k.proto, k.icmp_type);
  const FlowTuple tuple = tuple_of(k);
  const FlowTuple skey = state_key(k);
  FlowMatch m = icmp_error ? FlowMatch{} : flows_.lookup(skey, k.dir, k.ifindex, now_ms);
  if (m.node != kNoIndex && k.proto == 6) {
    // pf: a new SYN on a fully closed connection removes the old state and is filtered anew.
    const State& s = flows_.state(m.node);
    if (s.peer[0] >= kTcpFinWait2 && s.peer[1] >= kTcpFinWait2 && (k.tcp_flags & 0x12) == 0x02) {
      flows_.remove(m.node);
      m = FlowMatch{};
    }
  }
  if (m.node != kNoIndex) {
    flows_.update(m, k.tcp_flags, k.length, now_ms);
    const State& s = flows_.state(m.node);
    v->rule_id = s.rule_id;
    v->anchor_rule_id = s.anchor_rule_id;
    v->n_match = s.n_match;
    for (int i = 0; i < s.n_match; ++i) v->match_ids[i] = s.match_ids[i];
    // Forward packets continue as T, replies as reverse(O).
    FlowTuple x = m.reply ? s.fwd.reversed() : s.rev.reversed();
    if (icmp) {  // ICMP keeps the packet's own type-specific ports
      x.sport = k.sport;
      x.dport = k.dport;
    }
    if (!(x == tuple)) {
      v->translated = true;
      v->xlat = x;
    }
    v->tenant = by_anchor ? s.tenant : pkt_tenant;
    if (p && s.generation == p->generation) count_rules(*p, s.rule_id, s.anchor_rule_id, s.match_ids, s.n_match);
    count_tenant();
    return finish(Reason::kState);
  }
  if (!p) return finish(Reason::kDefault);

  WalkState w;
  const PacketKey walk_start = k;
  if (opts_.linear_walk) {
    walk_linear(*p, 0, k, k, w);
  } else {
    walk_classifier(*current_, k, w);
  }
  if (opts_.count_evaluations) count_evaluations(*p, walk_start, w);
  v->n_match = w.n_match;
  for (int i = 0; i < w.n_match; ++i) v->match_ids[i] = w.match_ids[i];
  if (w.fail != kNone) {
    // A translation without an address or a too-deep anchor: pf drops the packet.
    const Entry& e = p->entries[w.fail];
    v->block = 1;
    v->rule_id = e.rule_id;
    v->tenant = rule_tenant(e.rule_id);
    count_tenant();
    return finish(Reason::kRule);
  }
  if (w.decision == kNone) {
    FlowTuple out_tuple = tuple_of(k);
    if (!(out_tuple == tuple)) {
      v->translated = true;
      v->xlat = out_tuple;
    }
    v->tenant = by_anchor ? kNone : pkt_tenant;
    count_tenant();
    return finish(Reason::kDefault);
  }
  const Entry& e = p->entries[w.decision];
  v->rule_id = e.rule_id;
  v->anchor_rule_id = e.anchor_rule_id;
  v->tenant = rule_tenant(e.rule_id);
  if (e.kind == EntryKind::kBlock) {
    v->block = 1;
    if (e.flags & kEntryReturn) v->ret = k.proto == 6 ? ReturnAction::kRst : ReturnAction::kIcmpUnreach;
    count_rules(*p, e.rule_id, e.anchor_rule_id, nullptr, 0);
    count_tenant();
    return finish(Reason::kRule);
  }
  // A pass rule's own translation applies only because it is the final decision.
  if ((e.nat != kNone || e.rdr != kNone) && !translate(*p, e, k)) {
    v->block = 1;
    count_tenant();
    return finish(Reason::kRule);
  }
  const FlowTuple out_tuple = tuple_of(k);
  if (!(out_tuple == tuple)) {
    v->translated = true;
    v->xlat = out_tuple;
  }
  if (!(e.flags & kEntryKeepState) || icmp_error) {
    count_rules(*p, e.rule_id, e.anchor_rule_id, nullptr, 0);
    count_tenant();
    return finish(Reason::kRule);
  }
  {
    const bool bound = (p->flags & kProgramIfBound) != 0;
    const FlowTuple rev = state_key(k).reversed();
    // A full table, or a same-direction state owning one of the new keys (pf's STATEINS, only
    // translations can cause it), refuses the state: the packet is dropped.
    if (!flows_.has_room(now_ms) || flows_.collides(skey, rev, k.dir, bound, k.ifindex, now_ms)) {
      v->block = 1;
      v->translated = false;
      counters_.state_limit.add(1);
      count_tenant();
      return finish(Reason::kStateLimit);
    }
    State s;
    s.bound = bound;
    s.fwd = skey;
    s.rev = rev;
    s.ifindex = k.ifindex;
    s.dir = k.dir;
    s.rule_id = e.rule_id;
    s.anchor_rule_id = e.anchor_rule_id;
    s.n_match = static_cast<uint8_t>(w.n_match < kMaxStateMatchIds ? w.n_match : kMaxStateMatchIds);
    for (int i = 0; i < s.n_match; ++i) s.match_ids[i] = w.match_ids[i];
    s.generation = p->generation;
    s.tenant = v->tenant;
    flows_.init_protocol_state(s, k.tcp_flags);
    s.packets[0] = 1;
    s.bytes[0] = k.length;
    if (flows_.insert(s, now_ms) == kNoIndex) {
      v->block = 1;
      v->translated = false;
      counters_.state_limit.add(1);
      count_tenant();
      return finish(Reason::kStateLimit);
    }
    v->state_created = true;
    counters_.states_created.add(1);
    // pf_create_state counts the state on its rule, its anchor rule and its match rules alike.
    auto add_state = [&](uint32_t r) {
      if (r == kNone || r >= p->n_rules) return;
      p->rule_counters[r].states_cur.add(1);
      p->rule_counters[r].states_total.add(1);
    };
    add_state(e.rule_id);
    add_state(e.anchor_rule_id);
    for (int i = 0; i < s.n_match; ++i) add_state(s.match_ids[i]);
  }
  count_rules(*p, e.rule_id, e.anchor_rule_id, w.match_ids, w.n_match);
  count_tenant();
  finish(Reason::kRule);
}

}  // namespace ztb
