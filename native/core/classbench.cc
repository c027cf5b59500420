// ClassBench parsers and trace generator (see classbench.h).
#include "core/classbench.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>

namespace ztb {

namespace {

constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();

// Cursor over one text with 1-based line/column for error messages.
class Cursor {
 public:
  explicit Cursor(std::string_view t) : t_(t) {}
  bool eof() const { return i_ >= t_.size(); }
  char peek() const { return eof() ? '\0' : t_[i_]; }
  void bump() {
    if (t_[i_] == '\n') { ++line_; line_start_ = i_ + 1; }
    ++i_;
  }
  void skip_blanks() { while (!eof() && (peek() == ' ' || peek() == '\t' || peek() == '\r')) bump(); }
  bool at_eol() { skip_blanks(); return eof() || peek() == '\n'; }
  void next_line() { while (!eof() && peek() != '\n') bump(); if (!eof()) bump(); }
  Status error(const std::string& m) const {
    // Points at the start of the token being read (the number, not the digit that overflowed).
    const size_t at = tok_ >= line_start_ ? tok_ : i_;
    return Status(Errc::kInvalidArgument, std::to_string(line_) + ":" + std::to_string(at - line_start_ + 1) + ": " + m);
  }
  bool number(uint64_t max, uint64_t* out) {
    skip_blanks();
    tok_ = i_;
    uint64_t v = 0;
    size_t n = 0;
    while (!eof() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<uint64_t>(peek() - '0');
      if (v > max) return false;
      bump();
      ++n;
    }
    *out = v;
    return n > 0;
  }
  bool hex(uint64_t max, uint64_t* out) {
    tok_ = i_;
    if (peek() != '0') return false;
    bump();
    if (peek() != 'x' && peek() != 'X') return false;
    bump();
    uint64_t v = 0;
    size_t n = 0;
    for (;;) {
      const char c = peek();
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else break;
      v = v * 16 + static_cast<uint64_t>(d);
      if (v > max) return false;
      bump();
      ++n;
    }
    *out = v;
    return n > 0;
  }
  bool expect(char c) {
    skip_blanks();
    tok_ = i_;
    if (peek() != c) return false;
    bump();
    return true;
  }

 private:
  std::string_view t_;
  size_t i_ = 0;
  size_t line_ = 1;
  size_t line_start_ = 0;
  size_t tok_ = 0;
};

Status parse_prefix(Cursor& c, Range* r) {
  uint32_t addr = 0;
  for (int i = 0; i < 4; ++i) {
    uint64_t octet;
    if (i > 0 && !c.expect('.')) return c.error("expected '.' in IPv4 address");
    if (!c.number(255, &octet)) return c.error("expected an octet 0..255");
    addr = (addr << 8) | static_cast<uint32_t>(octet);
  }
  uint64_t len;
  if (!c.expect('/')) return c.error("expected '/' after IPv4 address");
  if (!c.number(32, &len)) return c.error("expected a prefix length 0..32");
  const uint32_t mask = len == 0 ? 0 : kMax << (32 - len);
  if (len == 0) { *r = Range{0, kMax}; return Status::ok(); }
  *r = Range{addr & mask, (addr & mask) | ~mask};
  return Status::ok();
}

Status parse_port_range(Cursor& c, Range* r) {
  uint64_t lo, hi;
  if (!c.number(65535, &lo)) return c.error("expected a port 0..65535");
  if (!c.expect(':')) return c.error("expected ':' in port range");
  if (!c.number(65535, &hi)) return c.error("expected a port 0..65535");
  if (lo > hi) return c.error("port range has lo > hi");
  *r = (lo == 0 && hi == 65535) ? Range{0, kMax} : Range{static_cast<uint32_t>(lo), static_cast<uint32_t>(hi)};
  return Status::ok();
}

}  // namespace

Result<std::vector<BoxRule>> parse_classbench_rules(std::string_view text) {
  Cursor c(text);
  std::vector<BoxRule> out;
  while (!c.eof()) {
    if (c.at_eol()) { c.next_line(); continue; }
    if (!c.expect('@')) return c.error("a rule line must start with '@'");
    if (out.size() >= kMaxClassBenchRules) return c.error("too many rules (cap " + std::to_string(kMaxClassBenchRules) + ")");
    BoxRule b;
    b.priority = static_cast<uint32_t>(out.size());
    b.value = static_cast<uint32_t>(out.size());
    Status s = parse_prefix(c, &b.dims[0]);
    if (s.is_ok()) { c.skip_blanks(); s = parse_prefix(c, &b.dims[1]); }
    if (s.is_ok()) s = parse_port_range(c, &b.dims[2]);
    if (s.is_ok()) s = parse_port_range(c, &b.dims[3]);
    if (!s.is_ok()) return s;
    c.skip_blanks();
    uint64_t pv, pm;
    if (!c.hex(255, &pv) || !c.expect('/') || (c.skip_blanks(), !c.hex(255, &pm))) {
      return c.error("expected protocol 0xPP/0xMM");
    }
    if (pm == 0) b.dims[4] = Range{0, kMax};
    else if (pm == 0xFF) b.dims[4] = Range{static_cast<uint32_t>(pv), static_cast<uint32_t>(pv)};
    else return c.error("protocol mask must be 0x00 or 0xFF");
    if (!c.at_eol()) {
      // Optional TCP-flags value/mask: validated, then ignored (5-tuple classification).
      uint64_t fv, fm;
      if (!c.hex(0xFFFF, &fv) || !c.expect('/') || (c.skip_blanks(), !c.hex(0xFFFF, &fm))) {
        return c.error("expected flags 0xFFFF/0xFFFF");
      }
      if (!c.at_eol()) return c.error("unexpected text after the rule");
    }
    out.push_back(b);
    c.next_line();
  }
  return out;
}

Result<ClassBenchTrace> parse_classbench_trace(std::string_view text) {
  Cursor c(text);
  ClassBenchTrace t;
  int columns = 0;
  while (!c.eof()) {
    if (c.at_eol()) { c.next_line(); continue; }
    if (t.size() >= kMaxClassBenchTrace) return c.error("trace too long (cap " + std::to_string(kMaxClassBenchTrace) + ")");
    uint64_t v[7];
    int n = 0;
    while (!c.at_eol()) {
      if (n == 7) return c.error("a trace line has 6 or 7 columns");
      if (!c.number(kMax, &v[n])) return c.error("expected an unsigned 32-bit integer");
      ++n;
    }
    if (n != 6 && n != 7) return c.error("a trace line has 6 or 7 columns, this one " + std::to_string(n));
    if (columns == 0) columns = n;
    if (n != columns) return c.error("column count changes within the trace");
    if (v[2] > 65535 || v[3] > 65535) return c.error("port out of range");
    if (v[4] > 255) return c.error("protocol out of range");
    for (int i = 0; i < 5; ++i) t.keys.push_back(static_cast<uint32_t>(v[i]));
    t.last.push_back(static_cast<uint32_t>(v[n - 1]));
    c.next_line();
  }
  t.alt_format = columns == 7;
  return t;
}

std::vector<uint32_t> generate_classbench_trace(std::span<const BoxRule> rules, size_t n, uint64_t seed) {
  std::vector<uint32_t> keys;
  if (rules.empty()) return keys;
  keys.reserve(n * kClassBenchDims);
  std::mt19937_64 rng(seed);
  // Field domains: a wildcard's corners are the domain bounds, as in ClassBench's generator.
  const uint32_t domain_hi[kClassBenchDims] = {kMax, kMax, 65535, 65535, 255};
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  size_t made = 0;
  while (made < n) {
    const BoxRule& r = rules[rng() % rules.size()];
    uint32_t key[kClassBenchDims];
    for (int d = 0; d < kClassBenchDims; ++d) {
      const uint32_t lo = r.dims[d].lo;
      const uint32_t hi = std::min(r.dims[d].hi, domain_hi[d]);
      key[d] = (rng() & 1) ? hi : lo;
    }
    // Pareto(a=1, b=0.1) copies, capped, like trace_generator's locality knobs.
    const double u = std::max(unit(rng), 1e-9);
    size_t copies = static_cast<size_t>(std::ceil(0.1 / u * 1.0));
    copies = std::min<size_t>(std::max<size_t>(copies, 1), 64);
    for (size_t k = 0; k < copies && made < n; ++k, ++made) keys.insert(keys.end(), key, key + kClassBenchDims);
  }
  return keys;
}

}  // namespace ztb
