// Classifier vs LinearClassifier on random box sets: first_match, first_match_batch,
// for_each_match (all matches in order, early stop, min_priority), SIMD vs scalar, group splits.
// Seed: printed once; replay with ZTB_SEED=<n>.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/classifier.h"
#include "core/linear.h"
#include "test/classifier_random.h"
#include "test/testing.h"

using namespace ztb;
using ztb::testing::RandomBoxes;

namespace {

std::vector<std::pair<uint32_t, uint32_t>> all_linear(const LinearClassifier& l, const uint32_t* key,
                                                      uint32_t min_prio, size_t stop_after) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  l.for_each_match(key, min_prio, [&](uint32_t p, uint32_t v) {
    out.emplace_back(p, v);
    return out.size() < stop_after;
  });
  return out;
}

std::vector<std::pair<uint32_t, uint32_t>> all_fast(const Classifier& c, const uint32_t* key, uint32_t min_prio,
                                                    size_t stop_after) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  c.for_each_match(key, min_prio, [&](uint32_t p, uint32_t v) {
    out.emplace_back(p, v);
    return out.size() < stop_after;
  });
  return out;
}

void compare_one(RandomBoxes& gen, int n_dims, size_t n_rules, const ClassifierOptions& opt, int n_keys) {
  std::vector<BoxRule> boxes = gen.boxes(n_dims, n_rules);
  LinearClassifier lin(n_dims, boxes);
  auto built = Classifier::build(n_dims, boxes, opt);
  CHECK(built.is_ok());
  if (!built.is_ok()) {
    std::fprintf(stderr, "build: %s\n", built.status().message().c_str());
    return;
  }
  Classifier& c = built.value();
  Status inv = c.check_invariants();
  if (!inv.is_ok()) std::fprintf(stderr, "%s\n", inv.message().c_str());
  CHECK(inv.is_ok());
  ClassifierOptions scalar_opt = opt;
  scalar_opt.simd = SimdLevel::kScalar;
  auto scalar = Classifier::build(n_dims, boxes, scalar_opt);
  CHECK(scalar.is_ok());
  std::vector<uint32_t> keys;
  for (int k = 0; k < n_keys; ++k) {
    std::vector<uint32_t> key = gen.key(boxes, n_dims);
    keys.insert(keys.end(), key.begin(), key.end());
    const uint32_t want = lin.first_match(key.data());
    const uint32_t got = c.first_match(key.data());
    CHECK_EQ(got, want);
    CHECK_EQ(scalar.value().first_match(key.data()), want);
    const uint32_t pos = c.first_match_position(key.data(), nullptr);
    CHECK_EQ(pos == kNoMatch ? kNoMatch : c.value_at(pos), want);
    const uint32_t min_prio = gen.pick_priority(boxes);
    const size_t stop = gen.stop_after();
    auto a = all_linear(lin, key.data(), min_prio, stop);
    auto b = all_fast(c, key.data(), min_prio, stop);
    CHECK(a == b);
    if (a != b) {
      std::fprintf(stderr, "for_each_match differs: linear %zu matches, fast %zu (min_prio %u stop %zu)\n",
                   a.size(), b.size(), min_prio, stop);
      return;
    }
  }
  std::vector<uint32_t> out(n_keys), out_scalar(n_keys);
  c.first_match_batch(keys.data(), n_keys, out.data());
  scalar.value().first_match_batch(keys.data(), n_keys, out_scalar.data());
  for (int k = 0; k < n_keys; ++k) {
    const uint32_t want = lin.first_match(keys.data() + size_t(k) * n_dims);
    CHECK_EQ(out[k], want);
    CHECK_EQ(out_scalar[k], want);
  }
}

}  // namespace

TEST(classifier_worked_example_from_header) {
  BoxRule r[3];
  r[0].priority = 0; r[0].value = 0; r[0].dims[0] = {80, 80}; r[0].dims[1] = {6, 6};
  r[1].priority = 1; r[1].value = 1; r[1].dims[0] = {0, 1023};
  r[2].priority = 2; r[2].value = 2; r[2].dims[1] = {17, 17};
  auto c = Classifier::build(2, r);
  CHECK(c.is_ok());
  CHECK(c.value().check_invariants().is_ok());
  uint32_t key[2] = {80, 17};
  CHECK_EQ(c.value().first_match(key), 1u);
  std::vector<uint32_t> seen;
  c.value().for_each_match(key, 2, [&](uint32_t, uint32_t v) { seen.push_back(v); return true; });
  CHECK_EQ(seen.size(), size_t{1});
  CHECK_EQ(seen.empty() ? 99u : seen[0], 2u);
  auto counts = c.value().class_counts(0);
  CHECK_EQ(counts.size(), size_t{2});
  uint32_t key2[2] = {5000, 6};
  CHECK_EQ(c.value().first_match(key2), kNoMatch);
}

TEST(classifier_empty_and_invalid) {
  auto c = Classifier::build(5, std::span<const BoxRule>());
  CHECK(c.is_ok());
  uint32_t key[5] = {1, 2, 3, 4, 5};
  CHECK_EQ(c.value().first_match(key), kNoMatch);
  uint32_t out = 7;
  c.value().first_match_batch(key, 1, &out);
  CHECK_EQ(out, kNoMatch);
  CHECK(c.value().check_invariants().is_ok());
  CHECK(!Classifier::build(0, std::span<const BoxRule>()).is_ok());
  CHECK(!Classifier::build(17, std::span<const BoxRule>()).is_ok());
  BoxRule bad;
  bad.dims[0] = {5, 4};
  auto b = Classifier::build(1, std::span<const BoxRule>(&bad, 1));
  CHECK(!b.is_ok());
  CHECK(b.is_ok() || b.status().code() == Errc::kInvalidRule);
  ClassifierOptions o;
  o.max_group_rules = 100;
  CHECK(!Classifier::build(1, std::span<const BoxRule>(&bad, 1), o).is_ok());
}

TEST(classifier_all_wildcards_match_first) {
  std::vector<BoxRule> boxes(300);
  for (uint32_t i = 0; i < boxes.size(); ++i) { boxes[i].priority = 1000 - i; boxes[i].value = i; }
  auto c = Classifier::build(3, boxes);
  CHECK(c.is_ok());
  uint32_t key[3] = {1, 2, 3};
  CHECK_EQ(c.value().first_match(key), 299u);
  CHECK(c.value().check_invariants().is_ok());
}

TEST(classifier_random_vs_linear) {
  RandomBoxes gen("classifier_random_vs_linear");
  for (int round = 0; round < 40; ++round) {
    const int n_dims = 1 + static_cast<int>(gen.below(16));
    const size_t n_rules = gen.below(4) == 0 ? gen.below(8) : 1 + gen.below(600);
    ClassifierOptions opt;
    compare_one(gen, n_dims, n_rules, opt, 150);
  }
}

TEST(classifier_random_groups_and_budget) {
  RandomBoxes gen("classifier_random_groups_and_budget");
  for (int round = 0; round < 10; ++round) {
    const int n_dims = 1 + static_cast<int>(gen.below(8));
    const size_t n_rules = 200 + gen.below(1400);
    ClassifierOptions opt;
    opt.max_group_rules = 256 * (1 + static_cast<uint32_t>(gen.below(3)));
    compare_one(gen, n_dims, n_rules, opt, 120);
    // A tiny budget forces halving down to 256-rule groups; the result must not change.
    ClassifierOptions tight;
    tight.memory_budget = 64 << 10;
    std::vector<BoxRule> boxes = gen.boxes(n_dims, n_rules);
    auto c = Classifier::build(n_dims, boxes, tight);
    if (c.is_ok()) {
      CHECK(c.value().check_invariants().is_ok());
      LinearClassifier lin(n_dims, boxes);
      for (int k = 0; k < 100; ++k) {
        auto key = gen.key(boxes, n_dims);
        CHECK_EQ(c.value().first_match(key.data()), lin.first_match(key.data()));
      }
    } else {
      CHECK(c.status().code() == Errc::kLimit);
    }
  }
}

TEST(classifier_dead_mask_skips_positions) {
  RandomBoxes gen("classifier_dead_mask_skips_positions");
  for (int round = 0; round < 20; ++round) {
    const int n_dims = 1 + static_cast<int>(gen.below(6));
    std::vector<BoxRule> boxes = gen.boxes(n_dims, 1 + gen.below(900));
    for (uint32_t i = 0; i < boxes.size(); ++i) boxes[i].value = i;  // unique, to map back
    ClassifierOptions opt;
    opt.max_group_rules = 512;
    auto c = Classifier::build(n_dims, boxes, opt);
    CHECK(c.is_ok());
    const Classifier& cl = c.value();
    std::vector<uint64_t> dead(cl.dead_words(), 0);
    std::vector<BoxRule> live;
    for (uint32_t p = 0; p < cl.size(); ++p) {
      if (gen.below(3) == 0) dead[p / 64] |= uint64_t{1} << (p % 64);
    }
    // The live set in position order is what a linear scan must see.
    for (uint32_t p = 0; p < cl.size(); ++p) {
      if (!((dead[p / 64] >> (p % 64)) & 1)) live.push_back(boxes[cl.value_at(p)]);
    }
    LinearClassifier lin(n_dims, live);
    for (int k = 0; k < 150; ++k) {
      auto key = gen.key(boxes, n_dims);
      const uint32_t pos = cl.first_match_position(key.data(), dead.data());
      CHECK_EQ(pos == kNoMatch ? kNoMatch : cl.value_at(pos), lin.first_match(key.data()));
    }
  }
}
