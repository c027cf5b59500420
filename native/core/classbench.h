// ClassBench I/O for tests and the benchmark: rule and trace parsers and a seeded trace
// generator. Not on the packet path.
//
// What: ClassBench rule files (`@sip/len dip/len sp_lo : sp_hi dp_lo : dp_hi 0xPP/0xMM
// [0xFFFF/0xFFFF]`, space- or TAB-separated) become 5-dimensional BoxRules in the order
// (src, dst, sport, dport, proto); rule n (0-based line) gets priority n and value n. Ranges that
// cover a field's whole domain (ports 0:65535, proto mask 0x00, /0) become full 32-bit wildcards so
// the classifier can drop those dimensions; keys never exceed the field domains, so the results
// are unchanged. The TCP-flags column is ignored (as dpdk-test-acl does). Traces: 6 columns
// (primary: last = 1-based first match) or 7 TAB-separated columns (alt-6field: column 6 is the
// flags pseudo-dimension, ignored; last = 0-based generating rule, not necessarily the first
// match).
// Example: `@10.0.0.0/8 0.0.0.0/0 0 : 65535 80 : 80 0x06/0xFF` -> dims {[10.0.0.0, 10.255.255.255],
//   *, *, [80, 80], [6, 6]}.
// Errors: Status kInvalidArgument with `line:col: message` (1-based).
// Thread-safety: free functions on caller-owned data.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/box.h"
#include "core/status.h"

namespace ztb {

constexpr int kClassBenchDims = 5;
constexpr size_t kMaxClassBenchRules = 1u << 20;
constexpr size_t kMaxClassBenchTrace = 1u << 24;

struct ClassBenchTrace {
  std::vector<uint32_t> keys;  // n * 5 words
  std::vector<uint32_t> last;  // the trace's last column, per header
  bool alt_format = false;     // true: 7 columns, last is the 0-based generating rule
  size_t size() const { return last.size(); }
};

Result<std::vector<BoxRule>> parse_classbench_rules(std::string_view text);
Result<ClassBenchTrace> parse_classbench_trace(std::string_view text);

// ClassBench-style trace: pick a rule uniformly, take a random corner of its box in every
// dimension (the field's domain bounds for wildcards), then repeat the header a Pareto-distributed
// number of times (locality, as trace_generator does). Deterministic for a seed. n headers.
std::vector<uint32_t> generate_classbench_trace(std::span<const BoxRule> rules, size_t n, uint64_t seed);

}  // namespace ztb
