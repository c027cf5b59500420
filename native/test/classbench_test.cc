// ClassBench proof under ASan: parse every 1K rule set and trace vendored in bench/classbench
// (override with ZTB_CLASSBENCH_DIR), then for every header check that the classifier equals the
// linear first match, that the primary trace's last column (1-based) agrees, and that an
// alt-6field header's generating rule (0-based) does match it. The 10K traces run through the
// optimised addon in test/native/classbench.test.ts. Also: parser errors carry line:col.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/classbench.h"
#include "core/classifier.h"
#include "core/linear.h"
#include "test/testing.h"

using namespace ztb;

namespace {

std::string data_dir() {
  const char* env = std::getenv("ZTB_CLASSBENCH_DIR");
  return env ? env : "bench/classbench";
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

void check_set(const std::string& rel, bool primary) {
  std::string rules_text, trace_text;
  const std::string base = data_dir() + "/" + rel;
  CHECK(read_file(base + ".rules", &rules_text));
  CHECK(read_file(base + ".trace", &trace_text));
  auto rules = parse_classbench_rules(rules_text);
  CHECK(rules.is_ok());
  auto trace = parse_classbench_trace(trace_text);
  CHECK(trace.is_ok());
  if (!rules.is_ok() || !trace.is_ok()) {
    std::fprintf(stderr, "%s: %s %s\n", rel.c_str(), rules.is_ok() ? "" : rules.status().message().c_str(),
                 trace.is_ok() ? "" : trace.status().message().c_str());
    return;
  }
  CHECK(rules.value().size() > 700);
  CHECK(trace.value().size() > 7000);
  CHECK_EQ(trace.value().alt_format, !primary);
  LinearClassifier lin(kClassBenchDims, rules.value());
  auto built = Classifier::build(kClassBenchDims, rules.value());
  CHECK(built.is_ok());
  if (!built.is_ok()) return;
  const Classifier& c = built.value();
  CHECK(c.check_invariants().is_ok());
  const ClassBenchTrace& t = trace.value();
  std::vector<uint32_t> batch(t.size());
  c.first_match_batch(t.keys.data(), t.size(), batch.data());
  size_t bad = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const uint32_t* key = t.keys.data() + i * kClassBenchDims;
    const uint32_t want = lin.first_match(key);
    const uint32_t got = c.first_match(key);
    bool ok = got == want && batch[i] == want;
    if (primary) {
      ok = ok && want != kNoMatch && want + 1 == t.last[i];
    } else {
      // The generating rule matches; the first match can only be that rule or an earlier one.
      ok = ok && t.last[i] < rules.value().size() && rules.value()[t.last[i]].contains(key, kClassBenchDims) &&
           want <= t.last[i];
    }
    if (!ok && ++bad <= 5) {
      std::fprintf(stderr, "%s header %zu: classifier %u batch %u linear %u trace %u\n", rel.c_str(), i + 1, got,
                   batch[i], want, t.last[i]);
    }
  }
  CHECK_EQ(bad, size_t{0});
}

}  // namespace

TEST(classbench_primary_1k_sets_match_trace_and_linear) {
  check_set("acl1_1k", true);
  check_set("fw1_1k", true);
  check_set("ipc1_1k", true);
}

TEST(classbench_alt6_1k_sets_match_linear) {
  check_set("alt-6field/acl1_1k", false);
  check_set("alt-6field/fw1_1k", false);
  check_set("alt-6field/ipc1_1k", false);
}

TEST(classbench_parse_rule_fields) {
  auto r = parse_classbench_rules(
      "@10.0.0.0/8 0.0.0.0/0 0 : 65535 80 : 80 0x06/0xFF\n"
      "@1.2.3.4/32\t5.6.7.0/24\t1 : 2\t0 : 65535\t0x00/0x00\t0x0000/0x0200\t\n");
  CHECK(r.is_ok());
  if (!r.is_ok()) return;
  CHECK_EQ(r.value().size(), size_t{2});
  const BoxRule& a = r.value()[0];
  CHECK_EQ(a.dims[0].lo, 0x0A000000u);
  CHECK_EQ(a.dims[0].hi, 0x0AFFFFFFu);
  CHECK(a.dims[1].is_wildcard());
  CHECK(a.dims[2].is_wildcard());
  CHECK_EQ(a.dims[3].lo, 80u);
  CHECK_EQ(a.dims[4].hi, 6u);
  const BoxRule& b = r.value()[1];
  CHECK_EQ(b.priority, 1u);
  CHECK_EQ(b.dims[0].lo, 0x01020304u);
  CHECK_EQ(b.dims[1].hi, 0x050607FFu);
  CHECK_EQ(b.dims[2].hi, 2u);
  CHECK(b.dims[4].is_wildcard());
}

TEST(classbench_parse_errors_have_positions) {
  auto r = parse_classbench_rules("@1.2.3.4/32 5.6.7.8/32 0 : 65535 0 : 65535 0x06/0xFF\n@1.2.3.400/32\n");
  CHECK(!r.is_ok());
  if (!r.is_ok()) CHECK_EQ(r.status().message().substr(0, 4), std::string("2:8:"));
  auto p = parse_classbench_rules("@1.2.3.4/32 5.6.7.8/32 9 : 8 0 : 65535 0x06/0xFF\n");
  CHECK(!p.is_ok());
  auto m = parse_classbench_rules("@1.2.3.4/32 5.6.7.8/32 0 : 65535 0 : 65535 0x06/0x0F\n");
  CHECK(!m.is_ok());
  auto t = parse_classbench_trace("1 2 3 4 5 6\n1 2 3 4 5\n");
  CHECK(!t.is_ok());
  if (!t.is_ok()) CHECK_EQ(t.status().message().substr(0, 2), std::string("2:"));
  auto t2 = parse_classbench_trace("1 2 70000 4 5 6\n");
  CHECK(!t2.is_ok());
}

TEST(classbench_generated_trace_hits_rules) {
  auto r = parse_classbench_rules(
      "@10.0.0.0/8 0.0.0.0/0 0 : 65535 80 : 80 0x06/0xFF\n@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x00/0x00\n");
  CHECK(r.is_ok());
  if (!r.is_ok()) return;
  auto keys = generate_classbench_trace(r.value(), 500, 42);
  CHECK_EQ(keys.size(), size_t{2500});
  CHECK(keys == generate_classbench_trace(r.value(), 500, 42));
  size_t hits0 = 0;
  for (size_t i = 0; i < 500; ++i) {
    const uint32_t* k = keys.data() + i * 5;
    CHECK(k[2] <= 65535 && k[3] <= 65535 && k[4] <= 255);
    if (r.value()[0].contains(k, 5)) ++hits0;
  }
  CHECK(hits0 > 100);
}
