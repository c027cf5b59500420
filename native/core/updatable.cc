// UpdatableClassifier: writer bookkeeping, runs, background base rebuild and swap (design:
// updatable.h).
#include "core/updatable.h"

#include <algorithm>
#include <chrono>
#include <string>

namespace ztb {

namespace {

bool bit(const uint64_t* bits, uint32_t i) { return ((bits[i / 64] >> (i % 64)) & 1) != 0; }

void set_bit(uint64_t* bits, uint32_t i) {
  // Readers load these words concurrently: one atomic RMW per tombstone.
  __atomic_fetch_or(&bits[i / 64], uint64_t{1} << (i % 64), __ATOMIC_RELEASE);
}

}  // namespace

Result<std::unique_ptr<UpdatableClassifier>> UpdatableClassifier::create(int n_dims, std::span<const BoxRule> rules) {
  return create(n_dims, rules, Options{});
}

Result<std::unique_ptr<UpdatableClassifier>> UpdatableClassifier::create(int n_dims, std::span<const BoxRule> rules,
                                                                         const Options& options) {
  if (n_dims < 1 || n_dims > kMaxDims) return Status(Errc::kInvalidArgument, "updatable: n_dims must be 1..16");
  if (options.delta_capacity < 2 * kRunRules || options.rebuild_delta == 0 ||
      options.rebuild_delta >= options.delta_capacity) {
    return Status(Errc::kInvalidArgument, "updatable: need 0 < rebuild_delta < delta_capacity, capacity >= 128");
  }
  if (rules.size() > kMaxClassifierRules) return Status(Errc::kLimit, "updatable: too many rules");
  std::unique_ptr<UpdatableClassifier> u(new UpdatableClassifier(n_dims, options));
  std::vector<std::pair<uint64_t, BoxRule>> snap;
  snap.reserve(rules.size());
  for (const BoxRule& r : rules) {
    for (int d = 0; d < n_dims; ++d) {
      if (r.dims[d].lo > r.dims[d].hi) return Status(Errc::kInvalidRule, "updatable: a rule has lo > hi");
    }
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

void UpdatableClassifier::publish_locked(std::shared_ptr<State> st) {
  cur_ = st;
  state_.store(std::move(st), std::memory_order_release);
  stats_.max_runs = std::max<uint64_t>(stats_.max_runs, cur_->runs.size());
}

// A run over arena [start, end): live entries only (dead ones can never come back).
Result<std::shared_ptr<UpdatableClassifier::Run>> UpdatableClassifier::make_run_locked(const Arena& a, uint32_t start,
                                                                                     uint32_t end) const {
  std::vector<BoxRule> boxes;
  boxes.reserve(end - start);
  for (uint32_t i = start; i < end; ++i) {
    if (a.e[i].dead.load(std::memory_order_relaxed)) continue;
    BoxRule b = a.e[i].rule;
    b.value = i;
    boxes.push_back(b);
  }
  Result<Classifier> c = Classifier::build(n_dims_, boxes, opt_.classifier);
  if (!c.is_ok()) return c.status();
  auto run = std::make_shared<Run>();
  run->start = start;
  run->end = end;
  run->c = c.take();
  run->pos_of.assign(end - start, kNoMatch);
  for (uint32_t pos = 0; pos < run->c.size(); ++pos) run->pos_of[run->c.value_at(pos) - start] = pos;
  run->dead.reset(new uint64_t[std::max<size_t>(run->c.dead_words(), 1)]());
  return run;
}

// Covers full kRunRules blocks of the tail with runs, merging while a run is at most twice the
// size of the one after it (binary-counter style: O(log delta) runs, each entry rebuilt
// O(log delta) times).
Status UpdatableClassifier::add_runs_locked(State& st) {
  const Arena& a = *st.arena;
  const uint32_t size = a.size.load(std::memory_order_relaxed);
  while (size - st.tail_start >= kRunRules) {
    Result<std::shared_ptr<Run>> r = make_run_locked(a, st.tail_start, st.tail_start + kRunRules);
    if (!r.is_ok()) return r.status();
    st.runs.push_back(r.take());
    st.tail_start += kRunRules;
    ++stats_.run_builds;
    while (st.runs.size() >= 2) {
      const Run& x = *st.runs[st.runs.size() - 2];
      const Run& y = *st.runs.back();
      if (x.end - x.start > 2 * (y.end - y.start)) break;
      Result<std::shared_ptr<Run>> m = make_run_locked(a, x.start, y.end);
      if (!m.is_ok()) return m.status();
      st.runs.pop_back();
      st.runs.back() = m.take();
      ++stats_.run_builds;
    }
  }
  return Status::ok();
}

// Turns a finished build into the next State: rules erased since the snapshot become tombstones,
// rules inserted since form the new arena (covered by runs); then one atomic store publishes it.
Status UpdatableClassifier::publish_rebuild_locked(Built built) {
  if (!built.classifier.is_ok()) return built.classifier.status();
  auto base = std::make_shared<Base>();
  base->c = built.classifier.take();
  const uint32_t n = static_cast<uint32_t>(base->c.size());
  base->value.resize(n);
  base->seq.resize(n);
  for (uint32_t pos = 0; pos < n; ++pos) {
    const uint32_t i = base->c.value_at(pos);
    base->value[pos] = built.values[i];
    base->seq[pos] = built.seqs[i];
  }
  base->dead.reset(new uint64_t[std::max<size_t>(base->c.dead_words(), 1)]());
  const uint64_t snapshot_end = rebuilding_ ? rebuild_end_ : next_seq_;
  std::vector<std::pair<uint64_t, BoxRule>> newer;
  for (const auto& [seq, rec] : rules_) {
    if (seq >= snapshot_end) newer.emplace_back(seq, rec.rule);
  }
  std::sort(newer.begin(), newer.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  auto arena = std::make_shared<Arena>();
  arena->capacity = std::max<uint32_t>(opt_.delta_capacity, static_cast<uint32_t>(newer.size()) * 2);
  arena->e.reset(new DeltaEntry[arena->capacity]);
  arena->seq.reserve(newer.size());
  for (uint32_t i = 0; i < newer.size(); ++i) {
    arena->e[i].rule = newer[i].second;
    arena->seq.push_back(newer[i].first);
    rules_.at(newer[i].first).loc = Loc{false, i};
  }
  arena->size.store(static_cast<uint32_t>(newer.size()), std::memory_order_relaxed);
  dead_in_base_ = 0;
  for (uint32_t pos = 0; pos < n; ++pos) {
    auto it = rules_.find(base->seq[pos]);
    if (it == rules_.end()) {
      // Erased while the snapshot was being built.
      base->dead[pos / 64] |= uint64_t{1} << (pos % 64);
      ++dead_in_base_;
    } else {
      it->second.loc = Loc{true, pos};
    }
  }
  auto st = std::make_shared<State>();
  st->base = std::move(base);
  st->arena = std::move(arena);
  if (newer.size() >= kRunRules) {
    // One run over every full block at once instead of log-merging them one by one.
    const uint32_t end = static_cast<uint32_t>(newer.size()) / kRunRules * kRunRules;
    Result<std::shared_ptr<Run>> r = make_run_locked(*st->arena, 0, end);
    if (!r.is_ok()) return r.status();
    st->runs.push_back(r.take());
    st->tail_start = end;
    ++stats_.run_builds;
  }
  rebuilding_ = false;
  publish_locked(std::move(st));
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
  const uint32_t delta = cur_->arena->size.load(std::memory_order_relaxed);
  // The arena may grow to half the base (a small base is cheap to rebuild), capped by the option.
  const size_t base_n = cur_->base->c.size();
  const size_t limit = std::max<size_t>(4 * kRunRules, std::min<size_t>(opt_.rebuild_delta, base_n / 2));
  const bool want = delta >= limit || (dead_in_base_ > 64 && dead_in_base_ * 4 > base_n);
  if (!want || rebuilding_) return Status::ok();
  rebuilding_ = true;
  rebuild_end_ = next_seq_;
  auto snap = snapshot_locked();
  if (!opt_.background) return publish_rebuild_locked(build_snapshot(n_dims_, opt_.classifier, std::move(snap)));
  pending_ = std::async(std::launch::async, [n = n_dims_, o = opt_.classifier, sn = std::move(snap)]() mutable {
    return build_snapshot(n, o, std::move(sn));
  });
  return Status::ok();
}

Status UpdatableClassifier::insert(const BoxRule& rule) {
  for (int d = 0; d < n_dims_; ++d) {
    if (rule.dims[d].lo > rule.dims[d].hi) {
      return Status(Errc::kInvalidRule, "updatable: dimension " + std::to_string(d) + " has lo > hi");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (rules_.size() >= kMaxClassifierRules) return Status(Errc::kLimit, "updatable: rule cap reached");
  if (cur_->arena->size.load(std::memory_order_relaxed) >= cur_->arena->capacity) {
    // The background rebuild cannot keep up: wait for it (or rebuild now) before appending.
    Status s = finish_rebuild_locked(true);
    if (!s.is_ok()) return s;
    if (cur_->arena->size.load(std::memory_order_relaxed) >= cur_->arena->capacity) {
      rebuild_end_ = next_seq_;
      rebuilding_ = true;
      s = publish_rebuild_locked(build_snapshot(n_dims_, opt_.classifier, snapshot_locked()));
      if (!s.is_ok()) return s;
    }
  }
  const uint64_t seq = next_seq_++;
  Arena& a = *cur_->arena;
  const uint32_t idx = a.size.load(std::memory_order_relaxed);
  a.e[idx].rule = rule;
  a.seq.push_back(seq);
  // Invariant: the entry is complete before the count that exposes it (release).
  a.size.store(idx + 1, std::memory_order_release);
  rules_.emplace(seq, Rec{rule, Loc{false, idx}});
  by_value_[rule.value].push_back(seq);
  stats_.max_delta = std::max<uint64_t>(stats_.max_delta, idx + 1);
  if (idx + 1 - cur_->tail_start >= kRunRules) {
    auto next = std::make_shared<State>(*cur_);
    Status s = add_runs_locked(*next);
    if (!s.is_ok()) return s;
    publish_locked(std::move(next));
  }
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
      set_bit(st.base->dead.get(), loc.index);
      ++dead_in_base_;
    } else {
      st.arena->e[loc.index].dead.store(true, std::memory_order_release);
      if (loc.index < st.tail_start) {
        auto run = std::upper_bound(st.runs.begin(), st.runs.end(), loc.index,
                                    [](uint32_t i, const std::shared_ptr<Run>& x) { return i < x->start; });
        const Run& x = **(run - 1);
        const uint32_t pos = x.pos_of[loc.index - x.start];
        if (pos != kNoMatch) set_bit(x.dead.get(), pos);
      }
    }
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
  const Base& b = *s.base;
  const uint32_t pos = b.c.first_match_position(key, b.dead.get());
  if (pos != kNoMatch) {
    found = true;
    best_prio = b.c.priority_at(pos);
    best_val = b.value[pos];
  }
  const Arena& a = *s.arena;
  // Strictly lower priority only: on a tie the earlier candidate was inserted first.
  for (const std::shared_ptr<Run>& run : s.runs) {
    const uint32_t p = run->c.first_match_position(key, run->dead.get());
    if (p != kNoMatch && (!found || run->c.priority_at(p) < best_prio)) {
      found = true;
      best_prio = run->c.priority_at(p);
      best_val = a.e[run->c.value_at(p)].rule.value;
    }
  }
  const uint32_t n = a.size.load(std::memory_order_acquire);
  for (uint32_t i = s.tail_start; i < n; ++i) {
    const DeltaEntry& e = a.e[i];
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
  const Base& b = *st.base;
  Status bs = b.c.check_invariants();
  if (!bs.is_ok()) return bs;
  size_t live_base = 0, live_delta = 0, dead_base = 0;
  for (uint32_t pos = 0; pos < b.c.size(); ++pos) {
    if (bit(b.dead.get(), pos)) { ++dead_base; continue; }
    ++live_base;
    auto it = rules_.find(b.seq[pos]);
    if (it == rules_.end()) return fail("live base position " + std::to_string(pos) + " holds an erased rule");
    if (!it->second.loc.in_base || it->second.loc.index != pos) return fail("base position does not match its record");
    if (it->second.rule.value != b.value[pos]) return fail("base value mismatch");
  }
  if (dead_base != dead_in_base_) return fail("tombstone count mismatch");
  const Arena& a = *st.arena;
  const uint32_t n = a.size.load();
  if (n != a.seq.size() || n > a.capacity) return fail("arena size mismatch");
  // Runs tile [0, tail_start) in order; a run position is live iff its arena entry is.
  uint32_t next = 0;
  for (const std::shared_ptr<Run>& run : st.runs) {
    if (run->start != next || run->end <= run->start || run->pos_of.size() != run->end - run->start) {
      return fail("runs do not tile the arena prefix");
    }
    next = run->end;
    Status rs = run->c.check_invariants();
    if (!rs.is_ok()) return rs;
    for (uint32_t i = run->start; i < run->end; ++i) {
      const uint32_t pos = run->pos_of[i - run->start];
      const bool live = !a.e[i].dead.load();
      if (pos == kNoMatch) {
        if (live) return fail("a live arena entry is missing from its run");
        continue;
      }
      if (run->c.value_at(pos) != i) return fail("run position maps to the wrong arena entry");
      if (bit(run->dead.get(), pos) == live) return fail("run tombstone disagrees with the arena");
    }
  }
  if (next != st.tail_start || st.tail_start > n) return fail("tail does not follow the runs");
  if (n - st.tail_start >= kRunRules) return fail("tail holds a full block that should be a run");
  for (uint32_t i = 0; i < n; ++i) {
    if (i > 0 && a.seq[i - 1] >= a.seq[i]) return fail("arena not in insertion order");
    if (a.e[i].dead.load()) {
      if (rules_.count(a.seq[i])) return fail("dead arena entry for a live rule");
      continue;
    }
    ++live_delta;
    auto it = rules_.find(a.seq[i]);
    if (it == rules_.end()) return fail("live arena entry for an erased rule");
    if (it->second.loc.in_base || it->second.loc.index != i) return fail("arena entry does not match its record");
    if (it->second.rule.value != a.e[i].rule.value) return fail("arena value mismatch");
  }
  if (live_base + live_delta != rules_.size()) return fail("live locations do not cover the rules");
  size_t by_value_total = 0;
  for (const auto& [v, seqs] : by_value_) by_value_total += seqs.size();
  if (by_value_total != rules_.size()) return fail("value index out of step");
  if (!b.seq.empty() && n > 0 && *std::max_element(b.seq.begin(), b.seq.end()) >= a.seq[0]) {
    return fail("a base rule is newer than the delta");
  }
  return Status::ok();
}

}  // namespace ztb
