// UpdatableClassifier vs a linear model: random inserts/erases (inline and background rebuilds),
// check_invariants() after every mutation, first_match / batch / for_each_match against a
// LinearClassifier over the model; plus a concurrent reader that must never see a half-applied
// state. Seed printed; replay with ZTB_SEED.
#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "core/linear.h"
#include "core/updatable.h"
#include "test/classifier_random.h"
#include "test/testing.h"

using namespace ztb;
using ztb::testing::RandomBoxes;

namespace {

struct Model {
  std::map<uint64_t, BoxRule> live;  // insertion seq -> rule
  uint64_t seq = 0;
  void insert(const BoxRule& r) { live.emplace(seq++, r); }
  size_t erase(uint32_t value) {
    size_t n = 0;
    for (auto it = live.begin(); it != live.end();) {
      if (it->second.value == value) { it = live.erase(it); ++n; } else { ++it; }
    }
    return n;
  }
  LinearClassifier linear(int n_dims) const {
    std::vector<BoxRule> v;
    for (const auto& [s, r] : live) v.push_back(r);
    return LinearClassifier(n_dims, v);
  }
};

void run_random(bool background, const char* name) {
  RandomBoxes gen(name);
  for (int round = 0; round < 6; ++round) {
    const int n_dims = 1 + static_cast<int>(gen.below(6));
    std::vector<BoxRule> initial = gen.boxes(n_dims, gen.below(300));
    UpdatableClassifier::Options opt;
    opt.background = background;
    // Small thresholds force base rebuilds; larger ones let runs form and merge.
    opt.rebuild_delta = 1 + static_cast<uint32_t>(gen.below(2) ? gen.below(40) : gen.below(400));
    opt.delta_capacity = opt.rebuild_delta + 128 + static_cast<uint32_t>(gen.below(64));
    auto made = UpdatableClassifier::create(n_dims, initial, opt);
    CHECK(made.is_ok());
    if (!made.is_ok()) return;
    UpdatableClassifier& u = *made.value();
    Model model;
    for (const BoxRule& r : initial) model.insert(r);
    std::vector<BoxRule> pool = gen.boxes(n_dims, 200);
    for (int step = 0; step < 250; ++step) {
      if (gen.below(2) == 0 && !model.live.empty()) {
        // Erase a present value (sometimes several boxes share it) or a missing one.
        uint32_t value;
        if (gen.below(8) == 0) {
          value = 1000000 + static_cast<uint32_t>(gen.below(1000));
        } else {
          auto it = model.live.begin();
          std::advance(it, gen.below(model.live.size()));
          value = it->second.value;
        }
        const size_t removed = model.erase(value);
        const Status s = u.erase(value);
        CHECK_EQ(s.is_ok(), removed > 0);
        if (removed == 0) CHECK(s.code() == Errc::kNotFound);
      } else {
        const BoxRule& r = pool[gen.below(pool.size())];
        model.insert(r);
        CHECK(u.insert(r).is_ok());
      }
      if (gen.below(10) == 0) CHECK(u.flush().is_ok());
      const Status inv = u.check_invariants();
      if (!inv.is_ok()) std::fprintf(stderr, "%s\n", inv.message().c_str());
      CHECK(inv.is_ok());
      CHECK_EQ(u.size(), model.live.size());
      LinearClassifier lin = model.linear(n_dims);
      std::vector<uint32_t> keys;
      std::vector<BoxRule> all;
      for (const auto& [q, r] : model.live) all.push_back(r);
      for (int k = 0; k < 12; ++k) {
        auto key = gen.key(all.empty() ? pool : all, n_dims);
        keys.insert(keys.end(), key.begin(), key.end());
        CHECK_EQ(u.first_match(key.data()), lin.first_match(key.data()));
        const uint32_t min_prio = gen.pick_priority(all);
        const size_t stop = gen.stop_after();
        std::vector<std::pair<uint32_t, uint32_t>> a, b;
        lin.for_each_match(key.data(), min_prio, [&](uint32_t p, uint32_t v) { a.emplace_back(p, v); return a.size() < stop; });
        u.for_each_match(key.data(), min_prio, [&](uint32_t p, uint32_t v) { b.emplace_back(p, v); return b.size() < stop; });
        CHECK(a == b);
      }
      std::vector<uint32_t> out(12);
      u.first_match_batch(keys.data(), 12, out.data());
      for (int k = 0; k < 12; ++k) CHECK_EQ(out[k], lin.first_match(keys.data() + k * n_dims));
    }
    CHECK(u.flush().is_ok());
    CHECK(u.check_invariants().is_ok());
  }
}

}  // namespace

TEST(classifier_updatable_inline_rebuilds_vs_model) { run_random(false, "classifier_updatable_inline_rebuilds_vs_model"); }

TEST(classifier_updatable_background_rebuilds_vs_model) {
  run_random(true, "classifier_updatable_background_rebuilds_vs_model");
}

TEST(classifier_updatable_rejects_bad_input) {
  BoxRule bad;
  bad.dims[0] = {9, 1};
  auto u = UpdatableClassifier::create(2, std::span<const BoxRule>());
  CHECK(u.is_ok());
  if (!u.is_ok()) return;
  CHECK(u.value()->insert(bad).code() == Errc::kInvalidRule);
  CHECK(u.value()->erase(5).code() == Errc::kNotFound);
  uint32_t key[2] = {0, 0};
  CHECK_EQ(u.value()->first_match(key), kNoMatch);
  CHECK(!UpdatableClassifier::create(0, std::span<const BoxRule>()).is_ok());
}

// A reader thread keeps looking up a key whose answer is pinned by a rule that is never erased
// (priority 0) while the writer churns thousands of other rules through several rebuilds; a
// second key is matched only by churned rules, so its answer must always be a value that was
// inserted for it (never garbage from a half-built table).
TEST(classifier_updatable_concurrent_reader_sees_whole_states) {
  std::vector<BoxRule> initial(2000);
  for (uint32_t i = 0; i < initial.size(); ++i) {
    initial[i].priority = 10 + i;
    initial[i].value = 100 + i;
    initial[i].dims[0] = {i * 10, i * 10 + 5};
  }
  initial[0].priority = 0;
  initial[0].value = 1;
  initial[0].dims[0] = {1000000, 1000000};
  UpdatableClassifier::Options opt;
  opt.rebuild_delta = 1000;
  auto made = UpdatableClassifier::create(1, initial, opt);
  CHECK(made.is_ok());
  if (!made.is_ok()) return;
  UpdatableClassifier& u = *made.value();
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::thread reader([&] {
    const uint32_t pinned = 1000000, churn = 3000000;
    while (!stop.load()) {
      if (u.first_match(&pinned) != 1) wrong.fetch_add(1);
      const uint32_t v = u.first_match(&churn);
      if (v != kNoMatch && (v < 500000 || v >= 600000)) wrong.fetch_add(1);
    }
  });
  uint32_t next = 500000;
  std::vector<uint32_t> live;
  for (int step = 0; step < 4000; ++step) {
    BoxRule r;
    r.priority = 5 + static_cast<uint32_t>(step % 7);
    r.value = next++;
    r.dims[0] = {2999990 + static_cast<uint32_t>(step % 5), 3000010};
    CHECK(u.insert(r).is_ok());
    live.push_back(r.value);
    if (live.size() > 50) {
      CHECK(u.erase(live.front()).is_ok());
      live.erase(live.begin());
    }
    // Erase initial rules too (some twice: NotFound is then the right answer).
    if (step % 7 == 0) (void)u.erase(100 + 1 + static_cast<uint32_t>(step % 1999));
  }
  stop.store(true);
  reader.join();
  CHECK_EQ(wrong.load(), 0);
  CHECK(u.flush().is_ok());
  CHECK(u.check_invariants().is_ok());
  CHECK(u.stats().rebuilds > 0);
  CHECK(u.stats().run_builds > 0);
}
