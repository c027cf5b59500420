#include "core/linear.h"
#include "test/testing.h"

using namespace ztb;

TEST(linear_first_match_respects_priority) {
  BoxRule a, b;
  a.priority = 1; a.value = 10; a.dims[0] = {0, 100};
  b.priority = 0; b.value = 20; b.dims[0] = {50, 60};
  BoxRule boxes[] = {a, b};
  LinearClassifier c(1, boxes);
  uint32_t k1 = 55, k2 = 70, k3 = 200;
  CHECK_EQ(c.first_match(&k1), 20u);
  CHECK_EQ(c.first_match(&k2), 10u);
  CHECK_EQ(c.first_match(&k3), kNoMatch);
  int seen = 0;
  c.for_each_match(&k1, 0, [&](uint32_t, uint32_t) { ++seen; return true; });
  CHECK_EQ(seen, 2);
  seen = 0;
  c.for_each_match(&k1, 1, [&](uint32_t, uint32_t v) { ++seen; CHECK_EQ(v, 10u); return true; });
  CHECK_EQ(seen, 1);
}
