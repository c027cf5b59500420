// UpdatableClassifier: writer bookkeeping, background rebuild and swap (design: updatable.h).
#include "core/updatable.h"

#include <algorithm>
#include <chrono>
#include <string>

namespace ztb {

Result<std::unique_ptr<UpdatableClassifier>> UpdatableClassifier::create(int n_dims, std::span<const BoxRule> rules) {
  return create(n_dims, rules, Options{});
}

Result<std::unique_ptr<UpdatableClassifier>> UpdatableClassifier::create(int n_dims, std::span<const BoxRule> rules,
                                                                         const Options& options) {
  if (n_dims < 1 || n_dims > kMaxDims) return Status(Errc::kInvalidArgument, "updatable: n_dims must be 1..16");
  if (options.delta_capacity < 16 || options.rebuild_delta == 0 || options.rebuild_delta >= options.delta_capacity) {
    return Status(Errc::kInvalidArgument, "updatable: need 0 < rebuild_delta < delta_capacity, capacity >= 16");
  }
  std::unique_ptr<UpdatableClassifier> u(new UpdatableClassifier(n_dims, options));
  std::vector<std::pair<uint64_t, BoxRule>> snap;
  snap.reserve(rules.size());
  for (const BoxRule& r : rules) {
    const uint64_t seq = u->next_seq_++;
    snap.emplace_back(seq, r);
    u->rules_.emplace(seq, Rec{r, Loc{}});
    u->by_value_[r.value].push_back(seq);
  }
  Built b = build_snapshot(n_dims, options.classifier, std::move(snap));
  if (!b.classifier.is_ok()) return b.classifier.status();
  std::lock_guard<std::mutex> lock(u->mu_);
  Status s = u->publish_rebuild_locked(std::move(b));
  if (!s.is_ok()) return s;
  u->stats_.rebuilds = 0;
  return u;
}

UpdatableClassifier::~UpdatableClassifier() {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_.valid()) pending_.wait();
}

UpdatableClassifier::Built UpdatableClassifier::build_snapshot(int n_dims, const ClassifierOptions& opt,
                                                               std::vector<std::pair<uint64_t, BoxRule>> snap) {
  // snap is in seq order, so the classifier's stable (priority, input order) sort is
  // (priority, seq). Box i carries value i so positions map back to the snapshot.
  std::vector<BoxRule> boxes;
  boxes.reserve(snap.size());
  Built out{Result<Classifier>(Status(Errc::kInvalidArgument, "unbuilt")), {}, {}};
  out.seqs.reserve(snap.size());
  out.values.reserve(snap.size());
  for (size_t i = 0; i < snap.size(); ++i) {
    BoxRule b = snap[i].second;
    b.value = static_cast<uint32_t>(i);
    boxes.push_back(b);
    out.seqs.push_back(snap[i].first);
    out.values.push_back(snap[i].second.value);
  }
  out.classifier = Classifier::build(n_dims, boxes, opt);
  return out;
}

std::vector<std::pair<uint64_t, BoxRule>> UpdatableClassifier::snapshot_locked() const {
  std::vector<std::pair<uint64_t, BoxRule>> snap;
  snap.reserve(rules_.size());
  for (const auto& [seq, rec] : rules_) snap.emplace_back(seq, rec.rule);
  std::sort(snap.begin(), snap.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return snap;
}

// Turns a finished build into the next State: rules erased since the snapshot become tombstones,
// rules inserted since form the delta; then one atomic store publishes it.
Status UpdatableClassifier::publish_rebuild_locked(Built built) {
  if (!built.classifier.is_ok()) return built.classifier.status();
  auto st = std::make_shared<State>();
  Classifier c = built.classifier.take();
  const size_t n = c.size();
  st->base_value.resize(n);
  st->base_seq.resize(n);
  for (uint32_t pos = 0; pos < n; ++pos) {
    const uint32_t i = c.value_at(pos);
    st->base_value[pos] = built.values[i];
    st->base_seq[pos] = built.seqs[i];
  }
  st->dead_words = c.dead_words();
  st->dead.reset(new uint64_t[st->dead_words == 0 ? 1 : st->dead_words]());
  st->base = std::make_unique<Classifier>(std::move(c));
  const uint64_t end = built.seqs.empty() ? 0 : built.seqs.back() + 1;
  const uint64_t snapshot_end = rebuilding_ ? rebuild_end_ : std::max(end, next_seq_);
  // Rules inserted after the snapshot, in seq order.
  std::vector<std::pair<uint64_t, BoxRule>> newer;
  for (const auto& [seq, rec] : rules_) {
    if (seq >= snapshot_end) newer.emplace_back(seq, rec.rule);
  }
  std::sort(newer.begin(), newer.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  st->delta_capacity = std::max<uint32_t>(opt_.delta_capacity, static_cast<uint32_t>(newer.size()) * 2);
  st->delta.reset(new DeltaEntry[st->delta_capacity]);
  st->delta_seq.reserve(newer.size());
  for (size_t i = 0; i < newer.size(); ++i) {
    st->delta[i].rule = newer[i].second;
    st->delta_seq.push_back(newer[i].first);
    rules_.at(newer[i].first).loc = Loc{false, static_cast<uint32_t>(i)};
  }
  st->delta_size.store(static_cast<uint32_t>(newer.size()), std::memory_order_relaxed);
  dead_in_base_ = 0;
  for (uint32_t pos = 0; pos < n; ++pos) {
    auto it = rules_.find(st->base_seq[pos]);
    if (it == rules_.end()) {
      // Erased while the snapshot was being built.
      st->dead[pos / 64] |= uint64_t{1} << (pos % 64);
      ++dead_in_base_;
    } else {
      it->second.loc = Loc{true, pos};
    }
  }
  erased_during_.clear();
  rebuilding_ = false;
  cur_ = st;
  state_.store(std::move(st), std::memory_order_release);
  ++stats_.rebuilds;
  return Status::ok();
}

Status UpdatableClassifier::finish_rebuild_locked(bool wait) {
  if (!rebuilding_) return Status::ok();
  if (!wait && pending_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return Status::ok();
  return publish_rebuild_locked(pending_.get());
}

Status UpdatableClassifier::maybe_rebuild_locked() {
  Status s = finish_rebuild_locked(false);
  if (!s.is_ok()) return s;
  const uint32_t delta = cur_->delta_size.load(std::memory_order_relaxed);
  const bool want = delta >= opt_.rebuild_delta || (dead_in_base_ > 64 && dead_in_base_ * 4 > cur_->base->size());
  if (!want || rebuilding_) return Status::ok();
  rebuilding_ = true;
  rebuild_end_ = next_seq_;
  auto snap = snapshot_locked();
  if (!opt_.background) {
    return publish_rebuild_locked(build_snapshot(n_dims_, opt_.classifier, std::move(snap)));
  }
  pending_ = std::async(std::launch::async, [n = n_dims_, o = opt_.classifier, sn = std::move(snap)]() mutable {
    return build_snapshot(n, o, std::move(sn));
  });
  return Status::ok();
}

Status UpdatableClassifier::insert(const BoxRule& rule) {
  for (int d = 0; d < n_dims_; ++d) {
    if (rule.dims[d].lo > rule.dims[d].hi) return Status(Errc::kInvalidRule, "updatable: dimension " + std::to_string(d) + " has lo > hi");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (rules_.size() >= kMaxClassifierRules) return Status(Errc::kLimit, "updatable: rule cap reached");
  if (cur_->delta_size.load(std::memory_order_relaxed) >= cur_->delta_capacity) {
    // The background rebuild cannot keep up: wait for it (or rebuild now) before appending.
    Status s = finish_rebuild_locked(true);
    if (!s.is_ok()) return s;
    if (cur_->delta_size.load(std::memory_order_relaxed) >= cur_->delta_capacity) {
      rebuild_end_ = next_seq_;
      rebuilding_ = true;
      s = publish_rebuild_locked(build_snapshot(n_dims_, opt_.classifier, snapshot_locked()));
      if (!s.is_ok()) return s;
    }
  }
  const uint64_t seq = next_seq_++;
  State& st = *cur_;
  const uint32_t idx = st.delta_size.load(std::memory_order_relaxed);
  st.delta[idx].rule = rule;
  st.delta_seq.push_back(seq);
  // Invariant: the entry is complete before the count that exposes it (release).
  st.delta_size.store(idx + 1, std::memory_order_release);
  rules_.emplace(seq, Rec{rule, Loc{false, idx}});
  by_value_[rule.value].push_back(seq);
  stats_.max_delta = std::max<uint64_t>(stats_.max_delta, idx + 1);
  return maybe_rebuild_locked();
}

Status UpdatableClassifier::erase(uint32_t value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_value_.find(value);
  if (it == by_value_.end()) return Status(Errc::kNotFound, "updatable: no rule with value " + std::to_string(value));
  State& st = *cur_;
  for (uint64_t seq : it->second) {
    auto r = rules_.find(seq);
    const Loc loc = r->second.loc;
    if (loc.in_base) {
      __atomic_fetch_or(&st.dead[loc.index / 64], uint64_t{1} << (loc.index % 64), __ATOMIC_RELEASE);
      ++dead_in_base_;
    } else {
      st.delta[loc.index].dead.store(true, std::memory_order_release);
    }
    if (rebuilding_ && seq < rebuild_end_) erased_during_.push_back(seq);
    rules_.erase(r);
  }
  by_value_.erase(it);
  return maybe_rebuild_locked();
}

Status UpdatableClassifier::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_rebuild_locked(true);
}

uint32_t UpdatableClassifier::lookup(const State& s, const uint32_t* key, int n_dims) {
  uint32_t best_prio = 0, best_val = kNoMatch;
  bool found = false;
  const uint32_t pos = s.base->first_match_position(key, s.dead.get());
  if (pos != kNoMatch) {
    found = true;
    best_prio = s.base->priority_at(pos);
    best_val = s.base_value[pos];
  }
  const uint32_t n = s.delta_size.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n; ++i) {
    const DeltaEntry& e = s.delta[i];
    // Strictly lower priority only: on a tie the base rule / earlier entry was inserted first.
    if ((!found || e.rule.priority < best_prio) && e.rule.contains(key, n_dims) &&
        !e.dead.load(std::memory_order_acquire)) {
      found = true;
      best_prio = e.rule.priority;
      best_val = e.rule.value;
    }
  }
  return best_val;
}

uint32_t UpdatableClassifier::first_match(const uint32_t* key) const {
  std::shared_ptr<State> s = state_.load(std::memory_order_acquire);
  return lookup(*s, key, n_dims_);
}

void UpdatableClassifier::first_match_batch(const uint32_t* keys, size_t n, uint32_t* out) const {
  std::shared_ptr<State> s = state_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) out[i] = lookup(*s, keys + i * n_dims_, n_dims_);
}

UpdatableClassifier::Stats UpdatableClassifier::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  s.live = rules_.size();
  return s;
}

size_t UpdatableClassifier::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rules_.size();
}

Status UpdatableClassifier::check_invariants() const {
  std::lock_guard<std::mutex> lock(mu_);
  auto fail = [](const std::string& m) { return Status(Errc::kInvalidArgument, "updatable invariant: " + m); };
  const State& st = *cur_;
  if (state_.load().get() != cur_.get()) return fail("published state is not the writer's state");
  Status b = st.base->check_invariants();
  if (!b.is_ok()) return b;
  size_t live_base = 0, live_delta = 0, dead_base = 0;
  for (uint32_t pos = 0; pos < st.base->size(); ++pos) {
    if ((st.dead[pos / 64] >> (pos % 64)) & 1) { ++dead_base; continue; }
    ++live_base;
    auto it = rules_.find(st.base_seq[pos]);
    if (it == rules_.end()) return fail("live base position " + std::to_string(pos) + " holds an erased rule");
    if (!it->second.loc.in_base || it->second.loc.index != pos) return fail("base position does not match its record");
    if (it->second.rule.value != st.base_value[pos]) return fail("base value mismatch");
  }
  if (dead_base != dead_in_base_) return fail("tombstone count mismatch");
  const uint32_t n = st.delta_size.load();
  if (n != st.delta_seq.size()) return fail("delta size mismatch");
  for (uint32_t i = 0; i < n; ++i) {
    if (st.delta[i].dead.load()) {
      if (rules_.count(st.delta_seq[i])) return fail("dead delta entry for a live rule");
      continue;
    }
    ++live_delta;
    auto it = rules_.find(st.delta_seq[i]);
    if (it == rules_.end()) return fail("live delta entry for an erased rule");
    if (it->second.loc.in_base || it->second.loc.index != i) return fail("delta entry does not match its record");
    if (it->second.rule.value != st.delta[i].rule.value) return fail("delta value mismatch");
    if (i > 0 && st.delta_seq[i - 1] >= st.delta_seq[i]) return fail("delta not in insertion order");
  }
  if (live_base + live_delta != rules_.size()) return fail("live locations do not cover the rules");
  size_t by_value_total = 0;
  for (const auto& [v, seqs] : by_value_) by_value_total += seqs.size();
  if (by_value_total != rules_.size()) return fail("value index out of step");
  if (!st.base_seq.empty() && n > 0 && st.base_seq.size() > 0) {
    uint64_t max_base = 0;
    for (uint64_t q : st.base_seq) max_base = std::max(max_base, q);
    if (max_base >= st.delta_seq[0]) return fail("a base rule is newer than the delta");
  }
  return Status::ok();
}

}  // namespace ztb
