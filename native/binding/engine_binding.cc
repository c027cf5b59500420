// N-API surface of the native engine. Entry points only convert: typed arrays in, typed arrays
// out, one call per batch (no JS object or call per packet, nothing allocated per batch). The core
// returns Status; a bad one becomes a NativeError with its code. Every std::exception is caught
// here. Output arrays are owned by the caller (src/engine/engine.ts allocates them once).
#include <exception>
#include <memory>
#include <string>

#include "binding/registry.h"
// The engine runs on the fast classifier (core/classifier.h); the linear one stays the slow twin.
#define ZTB_HAVE_CLASSIFIER 1
#include "core/engine.h"

namespace ztb::binding {
namespace {

constexpr int kHeaderWords = 16;  // see src/engine/engine.ts HEADER_WORDS
constexpr int kXlatWords = 10;    // src[4], dst[4], sport, dport
constexpr int kStatsWords = 6 + static_cast<int>(Reason::kCount) + static_cast<int>(MalformedReason::kCount);

struct Holder {
  std::unique_ptr<FastEngine> engine;
};

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Holder& holder(const Napi::CallbackInfo& info, const char* usage) {
  if (info.Length() < 1 || !info[0].IsExternal()) type_error(info.Env(), usage);
  Holder* h = info[0].As<Napi::External<Holder>>().Data();
  if (!h || !h->engine) throw_code(info.Env(), "ERR_ZTB_CLOSED", "the engine was closed");
  return *h;
}

template <class T>
std::span<T> typed(Napi::Env env, Napi::Value v, napi_typedarray_type want, const char* name, bool optional = false) {
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  if (!v.IsTypedArray()) type_error(env, std::string(name) + " must be a typed array");
  auto ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != want) type_error(env, std::string(name) + " has the wrong element type");
  auto buf = ta.ArrayBuffer();
  T* data = reinterpret_cast<T*>(static_cast<uint8_t*>(buf.Data()) + ta.ByteOffset());
  return std::span<T>(data, ta.ElementLength());
}

// A Uint16Array or Uint32Array (tenant / ifindex arrays accept both).
struct U16or32 {
  uint16_t* p16 = nullptr;
  uint32_t* p32 = nullptr;
  size_t n = 0;
  uint32_t get(size_t i) const { return p32 ? p32[i] : p16[i]; }
  void set(size_t i, uint32_t v) {
    if (p32) p32[i] = v;
    else p16[i] = static_cast<uint16_t>(v > 0xffff ? 0xffff : v);
  }
};

U16or32 u16or32(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsTypedArray()) type_error(env, std::string(name) + " must be a Uint16Array or Uint32Array");
  auto t = v.As<Napi::TypedArray>().TypedArrayType();
  U16or32 r;
  if (t == napi_uint32_array) {
    auto s = typed<uint32_t>(env, v, napi_uint32_array, name);
    r.p32 = s.data();
    r.n = s.size();
  } else if (t == napi_uint16_array) {
    auto s = typed<uint16_t>(env, v, napi_uint16_array, name);
    r.p16 = s.data();
    r.n = s.size();
  } else {
    type_error(env, std::string(name) + " must be a Uint16Array or Uint32Array");
  }
  return r;
}

uint32_t u32_prop(Napi::Object o, const char* name, uint32_t dflt) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) type_error(o.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    type_error(o.Env(), std::string(name) + " must be an integer in 0..2^32-1");
  }
  return static_cast<uint32_t>(d);
}

// Outputs of one batch.
struct Out {
  std::span<uint8_t> verdict, reason, flags, n_match, ret;
  std::span<uint32_t> rule_id, anchor_rule_id, xlat, match_ids;
  U16or32 tenant;
  size_t cap = 0;

  void write(size_t i, const Verdict& v) {
    verdict[i] = v.block;
    reason[i] = static_cast<uint8_t>(v.reason);
    rule_id[i] = v.rule_id;
    tenant.set(i, v.tenant == kNone ? (tenant.p32 ? kNone : 0xffff) : v.tenant);
    if (!anchor_rule_id.empty()) anchor_rule_id[i] = v.anchor_rule_id;
    if (!flags.empty()) flags[i] = static_cast<uint8_t>((v.state_created ? 1 : 0) | (v.translated ? 2 : 0));
    if (!ret.empty()) ret[i] = static_cast<uint8_t>(v.ret);
    if (!xlat.empty() && v.translated) {
      uint32_t* x = &xlat[i * kXlatWords];
      for (int w = 0; w < 4; ++w) { x[w] = v.xlat.src[w]; x[4 + w] = v.xlat.dst[w]; }
      x[8] = v.xlat.sport;
      x[9] = v.xlat.dport;
    }
    if (!n_match.empty()) n_match[i] = v.n_match;
    if (!match_ids.empty()) {
      for (int m = 0; m < v.n_match; ++m) match_ids[i * kMaxMatchIds + m] = v.match_ids[m];
    }
  }
};

Out read_out(Napi::Env env, Napi::Value v, size_t n) {
  if (!v.IsObject()) type_error(env, "out must be an object of typed arrays");
  Napi::Object o = v.As<Napi::Object>();
  Out r;
  r.verdict = typed<uint8_t>(env, o.Get("verdict"), napi_uint8_array, "out.verdict");
  r.reason = typed<uint8_t>(env, o.Get("reason"), napi_uint8_array, "out.reason");
  r.rule_id = typed<uint32_t>(env, o.Get("ruleId"), napi_uint32_array, "out.ruleId");
  r.tenant = u16or32(env, o.Get("tenant"), "out.tenant");
  r.anchor_rule_id = typed<uint32_t>(env, o.Get("anchorRuleId"), napi_uint32_array, "out.anchorRuleId", true);
  r.flags = typed<uint8_t>(env, o.Get("flags"), napi_uint8_array, "out.flags", true);
  r.ret = typed<uint8_t>(env, o.Get("returnAction"), napi_uint8_array, "out.returnAction", true);
  r.xlat = typed<uint32_t>(env, o.Get("xlat"), napi_uint32_array, "out.xlat", true);
  r.n_match = typed<uint8_t>(env, o.Get("nMatch"), napi_uint8_array, "out.nMatch", true);
  r.match_ids = typed<uint32_t>(env, o.Get("matchIds"), napi_uint32_array, "out.matchIds", true);
  bool ok = r.verdict.size() >= n && r.reason.size() >= n && r.rule_id.size() >= n && r.tenant.n >= n &&
            (r.anchor_rule_id.empty() || r.anchor_rule_id.size() >= n) && (r.flags.empty() || r.flags.size() >= n) &&
            (r.ret.empty() || r.ret.size() >= n) && (r.xlat.empty() || r.xlat.size() >= n * kXlatWords) &&
            (r.n_match.empty() || r.n_match.size() >= n) &&
            (r.match_ids.empty() || r.match_ids.size() >= n * kMaxMatchIds);
  if (!ok) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "an output array is shorter than the batch");
  return r;
}

uint64_t now_arg(Napi::Env env, Napi::Value v) {
  if (!v.IsNumber()) type_error(env, "nowMs must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d < 9007199254740992.0)) type_error(env, "nowMs must be a non-negative safe integer");
  return static_cast<uint64_t>(d);
}

template <class F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw_code(info.Env(), "ERR_ZTB_NO_MEMORY", "out of memory in the native engine");
  } catch (const std::exception& e) {
    throw_code(info.Env(), "ERR_ZTB_NATIVE", e.what());
  }
}

Napi::Value JsEngineCreate(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsObject()) type_error(env, "engineCreate(opts: object)");
    Napi::Object o = info[0].As<Napi::Object>();
    EngineOptions opts;
    opts.max_states = u32_prop(o, "maxStates", opts.max_states);
    if (opts.max_states > (1u << 26)) throw_code(env, "ERR_ZTB_LIMIT", "maxStates is capped at 67108864");
    opts.expire_budget = u32_prop(o, "expireBudget", opts.expire_budget);
    opts.max_boxes = u32_prop(o, "maxBoxes", static_cast<uint32_t>(opts.max_boxes));
    opts.linear_walk = o.Get("linearWalk").ToBoolean().Value();
    opts.count_evaluations = o.Get("countEvaluations").ToBoolean().Value();
    auto* h = new Holder{std::make_unique<FastEngine>(opts)};
    return Napi::External<Holder>::New(env, h, [](Napi::Env, Holder* p) { delete p; });
  });
}

Napi::Value JsEngineLoad(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "engineLoad(handle, compiled: object)";
    Holder& h = holder(info, usage);
    if (info.Length() != 2 || !info[1].IsObject()) type_error(env, usage);
    Napi::Object c = info[1].As<Napi::Object>();
    ProgramInput in;
    in.n_rules = u32_prop(c, "nRules", 0);
    in.n_tenants = u32_prop(c, "nTenants", 0);
    in.flags = u32_prop(c, "flags", 0);
    auto arr = [&](const char* name) {
      auto s = typed<uint32_t>(env, c.Get(name), napi_uint32_array, name);
      return std::span<const uint32_t>(s.data(), s.size());
    };
    in.entries = arr("entries");
    in.instances = arr("instances");
    in.chains = arr("chains");
    in.boxes = arr("boxes");
    in.translations = arr("translations");
    in.pool = arr("pool");
    in.skip = arr("skip");
    in.tenant_ifaces = arr("tenantIfaces");
    in.tenant_vlans = arr("tenantVlans");
    in.tenant_vnis = arr("tenantVnis");
    in.tenant_prefixes = arr("tenantPrefixes");
    in.rule_tenant = arr("ruleTenant");
    // The walk for `evaluations` is optional: a program without it counts no evaluations.
    if (!c.Get("walk").IsUndefined()) in.walk = arr("walk");
    if (!c.Get("walkBoxes").IsUndefined()) in.walk_boxes = arr("walkBoxes");
    Status st = h.engine->load(in);
    if (!st.is_ok()) throw_code(env, errc_code(st.code()), st.message());
    return env.Undefined();
  });
}

Napi::Value JsEngineProcessFrames(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage =
        "engineProcessFrames(handle, buf: ArrayBuffer|Uint8Array, offsets: Uint32Array, lengths: Uint32Array, "
        "ifindex: Uint16Array|Uint32Array, dir: Uint8Array, nowMs: number, out: object)";
    Holder& h = holder(info, usage);
    if (info.Length() != 8) type_error(env, usage);
    std::span<const uint8_t> buf;
    if (info[1].IsArrayBuffer()) {
      auto ab = info[1].As<Napi::ArrayBuffer>();
      buf = std::span<const uint8_t>(static_cast<const uint8_t*>(ab.Data()), ab.ByteLength());
    } else {
      auto s = typed<uint8_t>(env, info[1], napi_uint8_array, "buf");
      buf = std::span<const uint8_t>(s.data(), s.size());
    }
    auto offsets = typed<uint32_t>(env, info[2], napi_uint32_array, "offsets");
    auto lengths = typed<uint32_t>(env, info[3], napi_uint32_array, "lengths");
    U16or32 ifindex = u16or32(env, info[4], "ifindex");
    auto dir = typed<uint8_t>(env, info[5], napi_uint8_array, "dir");
    uint64_t now = now_arg(env, info[6]);
    size_t n = offsets.size();
    if (lengths.size() != n || ifindex.n < n || dir.size() < n) {
      throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "offsets, lengths, ifindex and dir differ in length");
    }
    for (size_t i = 0; i < n; ++i) {
      if (offsets[i] > buf.size() || lengths[i] > buf.size() - offsets[i]) {
        throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "frame " + std::to_string(i) + " lies outside the buffer");
      }
    }
    Out out = read_out(env, info[7], n);
    FastEngine& e = *h.engine;
    e.begin_batch(now);
    for (size_t i = 0; i < n; ++i) {
      PacketKey k = parse_frame(buf.subspan(offsets[i], lengths[i]));
      k.ifindex = ifindex.get(i);
      k.dir = dir[i] ? 1 : 0;
      Verdict v;
      e.process(k, now, &v);
      out.write(i, v);
    }
    e.end_batch();
    return Napi::Number::New(env, static_cast<double>(n));
  });
}

// headers: kHeaderWords per packet:
//  0 ifindex, 1 dir | af << 8 | proto << 16 | tcpFlags << 24, 2..5 src, 6..9 dst,
//  10 sport | dport << 16, 11 icmpType | icmpCode << 8 | bits << 16 (1 ports, 2 icmp, 4 fragment,
//  8 vlan, 16 vni, 32 icmp code present), 12 vlan, 13 vni, 14 length, 15 reserved.
Napi::Value JsEngineProcessHeaders(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "engineProcessHeaders(handle, headers: Uint32Array, nowMs: number, out: object)";
    Holder& h = holder(info, usage);
    if (info.Length() != 4) type_error(env, usage);
    auto hdr = typed<uint32_t>(env, info[1], napi_uint32_array, "headers");
    if (hdr.size() % kHeaderWords) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "headers length is not a multiple of 16");
    uint64_t now = now_arg(env, info[2]);
    size_t n = hdr.size() / kHeaderWords;
    Out out = read_out(env, info[3], n);
    FastEngine& e = *h.engine;
    e.begin_batch(now);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t* w = &hdr[i * kHeaderWords];
      PacketKey k;
      k.ifindex = w[0];
      k.dir = (w[1] & 0xff) ? 1 : 0;
      k.af = static_cast<uint8_t>(w[1] >> 8);
      k.proto = static_cast<uint8_t>(w[1] >> 16);
      k.tcp_flags = static_cast<uint8_t>(w[1] >> 24);
      for (int j = 0; j < 4; ++j) { k.src[j] = w[2 + j]; k.dst[j] = w[6 + j]; }
      k.sport = static_cast<uint16_t>(w[10] & 0xffff);
      k.dport = static_cast<uint16_t>(w[10] >> 16);
      k.icmp_type = static_cast<uint8_t>(w[11]);
      k.icmp_code = static_cast<uint8_t>(w[11] >> 8);
      uint32_t bits = w[11] >> 16;
      k.has_ports = bits & 1;
      k.has_icmp = bits & 2;
      k.fragment = bits & 4;
      k.has_vlan = bits & 8;
      k.has_vni = bits & 16;
      k.icmp_code_known = bits & 32;
      k.vlan = static_cast<uint16_t>(w[12] & 0xfff);
      k.vni = w[13] & 0xffffff;
      k.length = w[14];
      if (k.af != 4 && k.af != 6) k.non_ip = true;
      Verdict v;
      e.process(k, now, &v);
      out.write(i, v);
    }
    e.end_batch();
    return Napi::Number::New(env, static_cast<double>(n));
  });
}

// Per-rule counters into a caller-owned Float64Array of nRules * kRuleCounterFields:
// matches, packets in, packets out, bytes in, bytes out, states current, states total, evaluations.
Napi::Value JsEngineRuleCounters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "engineRuleCounters(handle, out: Float64Array, tenants: Float64Array)";
    Holder& h = holder(info, usage);
    if (info.Length() != 3) type_error(env, usage);
    auto out = typed<double>(env, info[1], napi_float64_array, "out");
    auto tout = typed<double>(env, info[2], napi_float64_array, "tenants");
    auto rs = h.engine->ruleset();
    if (!rs) return Napi::Number::New(env, 0);
    const Program& p = *rs->program;
    if (out.size() < size_t{p.n_rules} * kRuleCounterFields || tout.size() < size_t{p.n_tenants} * kTenantCounterFields) {
      throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "counter output arrays are too short");
    }
    for (uint32_t r = 0; r < p.n_rules; ++r) {
      const RuleCounters& c = p.rule_counters[r];
      double* o = &out[size_t{r} * kRuleCounterFields];
      o[0] = static_cast<double>(c.matches.get());
      o[1] = static_cast<double>(c.packets[0].get());
      o[2] = static_cast<double>(c.packets[1].get());
      o[3] = static_cast<double>(c.bytes[0].get());
      o[4] = static_cast<double>(c.bytes[1].get());
      o[5] = static_cast<double>(c.states_cur.get());
      o[6] = static_cast<double>(c.states_total.get());
      o[7] = static_cast<double>(c.evaluations.get());
    }
    for (uint32_t t = 0; t < p.n_tenants; ++t) {
      const TenantCounters& c = p.tenant_counters[t];
      tout[size_t{t} * 3] = static_cast<double>(c.packets.get());
      tout[size_t{t} * 3 + 1] = static_cast<double>(c.bytes.get());
      tout[size_t{t} * 3 + 2] = static_cast<double>(c.blocked.get());
    }
    return Napi::Number::New(env, p.n_rules);
  });
}

// Engine-wide counters: packets, bytes, states created, states expired, state-limit refusals,
// current states, then one per Reason, then one per MalformedReason.
Napi::Value JsEngineStats(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "engineStats(handle, out: Float64Array)";
    Holder& h = holder(info, usage);
    if (info.Length() != 2) type_error(env, usage);
    auto out = typed<double>(env, info[1], napi_float64_array, "out");
    if (out.size() < static_cast<size_t>(kStatsWords)) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "stats array too short");
    const EngineCounters& c = h.engine->counters();
    out[0] = static_cast<double>(c.packets.get());
    out[1] = static_cast<double>(c.bytes.get());
    out[2] = static_cast<double>(c.states_created.get());
    out[3] = static_cast<double>(c.states_expired.get());
    out[4] = static_cast<double>(c.state_limit.get());
    out[5] = static_cast<double>(h.engine->flows().size());
    for (int i = 0; i < static_cast<int>(Reason::kCount); ++i) out[6 + i] = static_cast<double>(c.reasons[i].get());
    for (int i = 0; i < static_cast<int>(MalformedReason::kCount); ++i) {
      out[6 + static_cast<int>(Reason::kCount) + i] = static_cast<double>(c.malformed[i].get());
    }
    return Napi::Number::New(env, kStatsWords);
  });
}

Napi::Value JsEngineExpire(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "engineExpire(handle, nowMs: number, budget: number)";
    Holder& h = holder(info, usage);
    if (info.Length() != 3 || !info[2].IsNumber()) type_error(env, usage);
    uint64_t now = now_arg(env, info[1]);
    uint32_t budget = info[2].As<Napi::Number>().Uint32Value();
    h.engine->begin_batch(now);
    uint32_t freed = h.engine->flows().expire(now, budget);
    h.engine->end_batch();
    return Napi::Number::New(env, freed);
  });
}

// States into a caller-owned Float64Array, kStateFields per state (for inspection, not the hot
// path): af, proto, dir, ifindex, rule, anchor rule, peer[0], peer[1], created, last seen,
// timeout, packets fwd/reply, bytes fwd/reply, fwd sport/dport, reply sport/dport, bound,
// fwd src[4], fwd dst[4], reply src[4], reply dst[4]. Returns the number written.
constexpr int kStateFields = 36;
Napi::Value JsEngineStates(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "engineStates(handle, out: Float64Array)";
    Holder& h = holder(info, usage);
    if (info.Length() != 2) type_error(env, usage);
    auto out = typed<double>(env, info[1], napi_float64_array, "out");
    FlowTable& ft = h.engine->flows();
    size_t n = 0;
    for (uint32_t i = 0; i < ft.capacity() && (n + 1) * kStateFields <= out.size(); ++i) {
      const State& s = ft.state(i);
      if (!s.in_use) continue;
      double* o = &out[n * kStateFields];
      const double f[] = {double(s.fwd.af), double(s.fwd.proto), double(s.dir), double(s.ifindex), double(s.rule_id),
                          double(s.anchor_rule_id), double(s.peer[0]), double(s.peer[1]), double(s.created_ms),
                          double(s.last_ms), double(s.timeout_ms), double(s.packets[0]), double(s.packets[1]),
                          double(s.bytes[0]), double(s.bytes[1]), double(s.fwd.sport), double(s.fwd.dport),
                          double(s.rev.sport), double(s.rev.dport), s.bound ? 1.0 : 0.0};
      for (int j = 0; j < 20; ++j) o[j] = f[j];
      for (int w = 0; w < 4; ++w) {
        o[20 + w] = s.fwd.src[w];
        o[24 + w] = s.fwd.dst[w];
        o[28 + w] = s.rev.src[w];
        o[32 + w] = s.rev.dst[w];
      }
      ++n;
    }
    return Napi::Number::New(env, static_cast<double>(n));
  });
}

Napi::Value JsEngineClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) type_error(env, "engineClose(handle)");
  Holder* h = info[0].As<Napi::External<Holder>>().Data();
  if (h) h->engine.reset();
  return env.Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("engineCreate", Napi::Function::New(env, JsEngineCreate, "engineCreate"));
  exports.Set("engineLoad", Napi::Function::New(env, JsEngineLoad, "engineLoad"));
  exports.Set("engineProcessFrames", Napi::Function::New(env, JsEngineProcessFrames, "engineProcessFrames"));
  exports.Set("engineProcessHeaders", Napi::Function::New(env, JsEngineProcessHeaders, "engineProcessHeaders"));
  exports.Set("engineRuleCounters", Napi::Function::New(env, JsEngineRuleCounters, "engineRuleCounters"));
  exports.Set("engineStats", Napi::Function::New(env, JsEngineStats, "engineStats"));
  exports.Set("engineExpire", Napi::Function::New(env, JsEngineExpire, "engineExpire"));
  exports.Set("engineStates", Napi::Function::New(env, JsEngineStates, "engineStates"));
  exports.Set("engineClose", Napi::Function::New(env, JsEngineClose, "engineClose"));
}

}  // namespace

ZTB_REGISTER_EXPORTS(Register);

}  // namespace ztb::binding
