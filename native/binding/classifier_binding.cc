// N-API surface of the classifier, the ClassBench helpers and the native benchmark loops. Only
// converts and checks arguments: rules arrive as one Uint32Array (per rule: priority, value, then
// lo/hi per dimension), keys as n * nDims words, results go into a caller-owned Uint32Array (no
// allocation per batch, no JS call per packet). Handles are Externals with a type tag and a
// finalizer; every C++ exception is caught here and rethrown as a NativeError.
#include <atomic>
#include <chrono>
#include <ctime>
#ifdef __linux__
#include <sched.h>
#endif
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "binding/registry.h"
#include "core/classbench.h"
#include "core/classifier.h"
#include "core/linear.h"
#include "core/updatable.h"

namespace ztb::binding {
namespace {

constexpr napi_type_tag kClassifierTag = {0x7a74625f636c6173ULL, 0x7369666965723031ULL};

struct Handle {
  int n_dims = 0;
  std::unique_ptr<Classifier> fast;
  std::unique_ptr<LinearClassifier> linear;
};

[[noreturn]] void throw_status(Napi::Env env, const Status& s) { throw_code(env, errc_code(s.code()), s.message()); }

[[noreturn]] void type_error(Napi::Env env, const char* usage) { throw Napi::TypeError::New(env, usage); }

Handle* unwrap(Napi::Env env, Napi::Value v, const char* usage) {
  if (!v.IsExternal()) type_error(env, usage);
  bool ok = false;
  if (napi_check_object_type_tag(env, v, &kClassifierTag, &ok) != napi_ok || !ok) type_error(env, usage);
  return v.As<Napi::External<Handle>>().Data();
}

Napi::Uint32Array u32(Napi::Env env, Napi::Value v, const char* usage) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) type_error(env, usage);
  return v.As<Napi::Uint32Array>();
}

int dims_arg(Napi::Env env, Napi::Value v, const char* usage) {
  if (!v.IsNumber()) type_error(env, usage);
  const int n = v.As<Napi::Number>().Int32Value();
  if (n < 1 || n > kMaxDims) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "nDims must be 1.." + std::to_string(kMaxDims));
  return n;
}

std::vector<BoxRule> decode_rules(Napi::Env env, Napi::Uint32Array a, int n_dims) {
  const size_t per = 2 + 2 * static_cast<size_t>(n_dims);
  if (a.ElementLength() % per != 0) {
    throw_code(env, "ERR_ZTB_INVALID_ARGUMENT",
               "rules length " + std::to_string(a.ElementLength()) + " is not a multiple of " + std::to_string(per));
  }
  const size_t n = a.ElementLength() / per;
  if (n > kMaxClassifierRules) throw_code(env, "ERR_ZTB_LIMIT", "too many rules: " + std::to_string(n));
  std::vector<BoxRule> out(n);
  const uint32_t* p = a.Data();
  for (size_t i = 0; i < n; ++i, p += per) {
    out[i].priority = p[0];
    out[i].value = p[1];
    for (int d = 0; d < n_dims; ++d) out[i].dims[d] = Range{p[2 + 2 * d], p[3 + 2 * d]};
  }
  return out;
}

Napi::Uint32Array encode_rules(Napi::Env env, const std::vector<BoxRule>& rules, int n_dims) {
  const size_t per = 2 + 2 * static_cast<size_t>(n_dims);
  Napi::Uint32Array a = Napi::Uint32Array::New(env, rules.size() * per);
  uint32_t* p = a.Data();
  for (const BoxRule& r : rules) {
    p[0] = r.priority;
    p[1] = r.value;
    for (int d = 0; d < n_dims; ++d) { p[2 + 2 * d] = r.dims[d].lo; p[3 + 2 * d] = r.dims[d].hi; }
    p += per;
  }
  return a;
}

Napi::Value wrap(Napi::Env env, std::unique_ptr<Handle> h) {
  auto ext = Napi::External<Handle>::New(env, h.release(), [](Napi::Env, Handle* p) { delete p; });
  napi_type_tag_object(env, ext, &kClassifierTag);
  return ext;
}

template <class F>
Napi::Value guard(const Napi::CallbackInfo& info, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw_code(info.Env(), "ERR_ZTB_NO_MEMORY", "out of memory");
  } catch (const std::exception& e) {
    throw_code(info.Env(), "ERR_ZTB_NATIVE", e.what());
  }
}

constexpr const char* kBuildUsage =
    "classifierBuild(rules: Uint32Array, nDims: number, options?: {memoryBudget?: number, "
    "maxGroupRules?: number, simd?: 'auto'|'scalar'|'avx2', linear?: boolean})";

Napi::Value JsClassifierBuild(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || info.Length() > 3) type_error(env, kBuildUsage);
    Napi::Uint32Array rules_a = u32(env, info[0], kBuildUsage);
    const int n_dims = dims_arg(env, info[1], kBuildUsage);
    ClassifierOptions opt;
    bool linear = false;
    if (info.Length() == 3 && !info[2].IsUndefined()) {
      if (!info[2].IsObject()) type_error(env, kBuildUsage);
      Napi::Object o = info[2].As<Napi::Object>();
      Napi::Array names = o.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); ++i) {
        const std::string k = names.Get(i).As<Napi::String>().Utf8Value();
        Napi::Value v = o.Get(k);
        if (k == "memoryBudget" && v.IsNumber() && v.As<Napi::Number>().DoubleValue() >= 1) {
          opt.memory_budget = static_cast<size_t>(v.As<Napi::Number>().DoubleValue());
        } else if (k == "maxGroupRules" && v.IsNumber()) {
          opt.max_group_rules = v.As<Napi::Number>().Uint32Value();
        } else if (k == "simd" && v.IsString()) {
          const std::string s = v.As<Napi::String>().Utf8Value();
          if (s == "auto") opt.simd = SimdLevel::kAuto;
          else if (s == "scalar") opt.simd = SimdLevel::kScalar;
          else if (s == "avx2") opt.simd = SimdLevel::kAvx2;
          else type_error(env, kBuildUsage);
        } else if (k == "linear" && v.IsBoolean()) {
          linear = v.As<Napi::Boolean>().Value();
        } else {
          throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "classifierBuild: unknown or invalid option '" + k + "'");
        }
      }
    }
    std::vector<BoxRule> rules = decode_rules(env, rules_a, n_dims);
    auto h = std::make_unique<Handle>();
    h->n_dims = n_dims;
    if (linear) {
      for (const BoxRule& r : rules) {
        for (int d = 0; d < n_dims; ++d) {
          if (r.dims[d].lo > r.dims[d].hi) throw_code(env, "ERR_ZTB_INVALID_RULE", "a rule has lo > hi");
        }
      }
      h->linear = std::make_unique<LinearClassifier>(n_dims, rules);
    } else {
      Result<Classifier> c = Classifier::build(n_dims, rules, opt);
      if (!c.is_ok()) throw_status(env, c.status());
      h->fast = std::make_unique<Classifier>(c.take());
    }
    return wrap(env, std::move(h));
  });
}

constexpr const char* kLookupUsage = "classifierLookupBatch(handle, keys: Uint32Array, out: Uint32Array)";

Napi::Value JsClassifierLookupBatch(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() != 3) type_error(env, kLookupUsage);
    Handle* h = unwrap(env, info[0], kLookupUsage);
    Napi::Uint32Array keys = u32(env, info[1], kLookupUsage);
    Napi::Uint32Array out = u32(env, info[2], kLookupUsage);
    if (keys.ElementLength() % h->n_dims != 0) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "keys length is not a multiple of nDims");
    const size_t n = keys.ElementLength() / h->n_dims;
    if (out.ElementLength() < n) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "out is shorter than the number of keys");
    if (h->fast) {
      h->fast->first_match_batch(keys.Data(), n, out.Data());
    } else {
      for (size_t i = 0; i < n; ++i) out.Data()[i] = h->linear->first_match(keys.Data() + i * h->n_dims);
    }
    return Napi::Number::New(env, static_cast<double>(n));
  });
}

constexpr const char* kMatchesUsage =
    "classifierMatches(handle, key: Uint32Array, minPriority: number, limit: number) -> Uint32Array [prio, value]*";

Napi::Value JsClassifierMatches(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() != 4 || !info[2].IsNumber() || !info[3].IsNumber()) type_error(env, kMatchesUsage);
    Handle* h = unwrap(env, info[0], kMatchesUsage);
    Napi::Uint32Array key = u32(env, info[1], kMatchesUsage);
    if (key.ElementLength() != static_cast<size_t>(h->n_dims)) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "key length must equal nDims");
    const uint32_t min_prio = info[2].As<Napi::Number>().Uint32Value();
    const uint32_t limit = info[3].As<Napi::Number>().Uint32Value();
    std::vector<uint32_t> found;
    auto f = [&](uint32_t p, uint32_t v) {
      found.push_back(p);
      found.push_back(v);
      return found.size() / 2 < limit;
    };
    if (limit > 0) {
      if (h->fast) h->fast->for_each_match(key.Data(), min_prio, f);
      else h->linear->for_each_match(key.Data(), min_prio, f);
    }
    Napi::Uint32Array out = Napi::Uint32Array::New(env, found.size());
    std::copy(found.begin(), found.end(), out.Data());
    return out;
  });
}

Napi::Value JsClassifierInfo(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Handle* h = unwrap(env, info[0], "classifierInfo(handle)");
    Napi::Object o = Napi::Object::New(env);
    o.Set("nDims", h->n_dims);
    if (h->fast) {
      o.Set("kind", "bitvector");
      o.Set("nRules", static_cast<double>(h->fast->size()));
      o.Set("memoryBytes", static_cast<double>(h->fast->memory_bytes()));
      o.Set("groups", static_cast<double>(h->fast->n_groups()));
      o.Set("simd", h->fast->simd() == SimdLevel::kAvx2 ? "avx2" : "scalar");
      const Status s = h->fast->check_invariants();
      o.Set("invariants", s.is_ok() ? std::string("ok") : s.message());
    } else {
      o.Set("kind", "linear");
      o.Set("nRules", static_cast<double>(h->linear->size()));
      o.Set("memoryBytes", static_cast<double>(h->linear->memory_bytes()));
      o.Set("groups", 1);
      o.Set("simd", "scalar");
      o.Set("invariants", "ok");
    }
    return o;
  });
}

std::string text_arg(Napi::Env env, Napi::Value v, const char* usage) {
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  type_error(env, usage);
}

Napi::Value JsClassbenchParseRules(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "classbenchParseRules(text: string | Buffer) -> Uint32Array (5 dims)";
    if (info.Length() != 1) type_error(env, usage);
    Result<std::vector<BoxRule>> r = parse_classbench_rules(text_arg(env, info[0], usage));
    if (!r.is_ok()) throw_status(env, r.status());
    return encode_rules(env, r.value(), kClassBenchDims);
  });
}

Napi::Value JsClassbenchParseTrace(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "classbenchParseTrace(text: string | Buffer) -> {keys, last, alt}";
    if (info.Length() != 1) type_error(env, usage);
    Result<ClassBenchTrace> r = parse_classbench_trace(text_arg(env, info[0], usage));
    if (!r.is_ok()) throw_status(env, r.status());
    const ClassBenchTrace& t = r.value();
    Napi::Uint32Array keys = Napi::Uint32Array::New(env, t.keys.size());
    std::copy(t.keys.begin(), t.keys.end(), keys.Data());
    Napi::Uint32Array last = Napi::Uint32Array::New(env, t.last.size());
    std::copy(t.last.begin(), t.last.end(), last.Data());
    Napi::Object o = Napi::Object::New(env);
    o.Set("keys", keys);
    o.Set("last", last);
    o.Set("alt", t.alt_format);
    return o;
  });
}

Napi::Value JsClassbenchGenerateTrace(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "classbenchGenerateTrace(rules: Uint32Array (5 dims), n: number, seed: number) -> Uint32Array";
    if (info.Length() != 3 || !info[1].IsNumber() || !info[2].IsNumber()) type_error(env, usage);
    std::vector<BoxRule> rules = decode_rules(env, u32(env, info[0], usage), kClassBenchDims);
    const double n = info[1].As<Napi::Number>().DoubleValue();
    if (!(n >= 0 && n <= static_cast<double>(kMaxClassBenchTrace))) throw_code(env, "ERR_ZTB_LIMIT", "trace length out of range");
    std::vector<uint32_t> keys = generate_classbench_trace(rules, static_cast<size_t>(n),
                                                           static_cast<uint64_t>(info[2].As<Napi::Number>().DoubleValue()));
    Napi::Uint32Array out = Napi::Uint32Array::New(env, keys.size());
    std::copy(keys.begin(), keys.end(), out.Data());
    return out;
  });
}

// Pins the calling thread to one CPU for a measurement (the CPU dpdk-test-acl runs on, so both
// contenders share the same core's load), restoring the previous mask afterwards. No-op for
// cpu < 0 or off Linux.
class PinToCpu {
 public:
  explicit PinToCpu(int cpu) {
#ifdef __linux__
    if (cpu < 0 || cpu >= CPU_SETSIZE) return;
    if (sched_getaffinity(0, sizeof(old_), &old_) != 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pinned_ = sched_setaffinity(0, sizeof(set), &set) == 0;
#else
    (void)cpu;
#endif
  }
  ~PinToCpu() {
#ifdef __linux__
    if (pinned_) sched_setaffinity(0, sizeof(old_), &old_);
#endif
  }
  PinToCpu(const PinToCpu&) = delete;
  PinToCpu& operator=(const PinToCpu&) = delete;

 private:
#ifdef __linux__
  cpu_set_t old_{};
  bool pinned_ = false;
#endif
};

// Native-only timing loop: `iterations` passes over the keys, one first_match per key ('single')
// or first_match_batch over slices of batchSize ('batch'). Returns seconds and a checksum of the
// results (so the work cannot be optimised away, and the caller can compare runs).
Napi::Value JsBenchLookupLoop(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage =
        "benchLookupLoop(handle, keys: Uint32Array, iterations: number, batchSize: number (0 = single), cpu?: number)";
    if (info.Length() < 4 || info.Length() > 5 || !info[2].IsNumber() || !info[3].IsNumber()) type_error(env, usage);
    Handle* h = unwrap(env, info[0], usage);
    Napi::Uint32Array keys = u32(env, info[1], usage);
    const uint32_t iters = info[2].As<Napi::Number>().Uint32Value();
    const uint32_t batch = info[3].As<Napi::Number>().Uint32Value();
    if (keys.ElementLength() % h->n_dims != 0) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "keys length is not a multiple of nDims");
    if (batch > (1u << 20)) throw_code(env, "ERR_ZTB_LIMIT", "batchSize too large");
    const size_t n = keys.ElementLength() / h->n_dims;
    const uint32_t* k = keys.Data();
    std::vector<uint32_t> out(batch == 0 ? 1 : batch);
    PinToCpu pin(info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : -1);
    uint64_t sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint32_t it = 0; it < iters; ++it) {
      if (h->linear) {
        for (size_t i = 0; i < n; ++i) sum += h->linear->first_match(k + i * h->n_dims);
      } else if (batch == 0) {
        for (size_t i = 0; i < n; ++i) sum += h->fast->first_match(k + i * h->n_dims);
      } else {
        for (size_t i = 0; i < n; i += batch) {
          const size_t m = std::min<size_t>(batch, n - i);
          h->fast->first_match_batch(k + i * h->n_dims, m, out.data());
          for (size_t j = 0; j < m; ++j) sum += out[j];
        }
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Napi::Object o = Napi::Object::New(env);
    o.Set("seconds", secs);
    o.Set("lookups", static_cast<double>(n) * iters);
    o.Set("checksum", static_cast<double>(sum & ((uint64_t{1} << 52) - 1)));
    return o;
  });
}

// Update benchmark: a loaded UpdatableClassifier over `rules`; one thread looks up `keys` in a
// loop while this thread performs `n_updates` updates (alternating erase of a live rule and
// insert of a fresh copy of a random rule). Returns both rates and the rebuild count.
Napi::Value JsBenchUpdates(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* usage = "benchUpdates(rules: Uint32Array, nDims: number, keys: Uint32Array, nUpdates: number)";
    if (info.Length() != 4 || !info[3].IsNumber()) type_error(env, usage);
    const int n_dims = dims_arg(env, info[1], usage);
    std::vector<BoxRule> rules = decode_rules(env, u32(env, info[0], usage), n_dims);
    Napi::Uint32Array keys_a = u32(env, info[2], usage);
    if (keys_a.ElementLength() % n_dims != 0 || keys_a.ElementLength() == 0) {
      throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "keys length is not a positive multiple of nDims");
    }
    if (rules.empty()) throw_code(env, "ERR_ZTB_INVALID_ARGUMENT", "benchUpdates needs rules");
    std::vector<uint32_t> keys(keys_a.Data(), keys_a.Data() + keys_a.ElementLength());
    const uint32_t n_updates = info[3].As<Napi::Number>().Uint32Value();
    Result<std::unique_ptr<UpdatableClassifier>> made = UpdatableClassifier::create(n_dims, rules);
    if (!made.is_ok()) throw_status(env, made.status());
    UpdatableClassifier& u = *made.value();
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> lookups{0};
    std::thread reader([&] {
      // Batches of 256, as the packet path runs: one State load per batch.
      const size_t n = keys.size() / n_dims;
      uint64_t done = 0, sum = 0;
      std::vector<uint32_t> out(256);
      while (!stop.load(std::memory_order_relaxed)) {
        for (size_t i = 0; i < n && !stop.load(std::memory_order_relaxed); i += 256) {
          const size_t m = std::min<size_t>(256, n - i);
          u.first_match_batch(keys.data() + i * n_dims, m, out.data());
          for (size_t j = 0; j < m; ++j) sum += out[j];
          done += m;
        }
      }
      lookups.store(done + (sum & 1));
    });
    // Values: the originals keep theirs; each insert takes a fresh value, so erase(value) removes
    // exactly one box and the set stays at its size.
    std::vector<uint32_t> live;
    for (const BoxRule& r : rules) live.push_back(r.value);
    uint32_t next_value = 0;
    for (const BoxRule& r : rules) next_value = std::max(next_value, r.value + 1);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    Status bad;
    // CPU time as well as wall time: on a shared, loaded machine the wall-clock rate mostly
    // measures the scheduler; the writer's CPU time is the cost of an update.
    auto cpu = [](clockid_t c) {
      timespec t{};
      clock_gettime(c, &t);
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
    };
    const double writer0 = cpu(CLOCK_THREAD_CPUTIME_ID);
    const auto t0 = std::chrono::steady_clock::now();
    uint32_t done = 0;
    for (; done < n_updates; done += 2) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      const size_t victim = x % live.size();
      Status s = u.erase(live[victim]);
      if (!s.is_ok()) { bad = s; break; }
      BoxRule r = rules[(x >> 32) % rules.size()];
      r.value = next_value++;
      s = u.insert(r);
      if (!s.is_ok()) { bad = s; break; }
      live[victim] = r.value;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double writer_cpu = cpu(CLOCK_THREAD_CPUTIME_ID) - writer0;
    stop.store(true);
    reader.join();
    if (!bad.is_ok()) throw_status(env, bad);
    const UpdatableClassifier::Stats st = u.stats();
    Status inv = u.check_invariants();
    Napi::Object o = Napi::Object::New(env);
    o.Set("updates", static_cast<double>(done));
    o.Set("seconds", secs);
    o.Set("updatesPerSec", done / secs);
    o.Set("writerCpuSeconds", writer_cpu);
    o.Set("updatesPerWriterCpuSec", writer_cpu > 0 ? done / writer_cpu : 0.0);
    o.Set("lookupsPerSec", static_cast<double>(lookups.load()) / secs);
    o.Set("rebuilds", static_cast<double>(st.rebuilds));
    o.Set("maxDelta", static_cast<double>(st.max_delta));
    o.Set("invariants", inv.is_ok() ? std::string("ok") : inv.message());
    return o;
  });
}

Napi::Value JsCpuHasAvx2(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), cpu_has_avx2()); }

void RegisterClassifier(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuHasAvx2", Napi::Function::New(env, JsCpuHasAvx2, "cpuHasAvx2"));
  exports.Set("classifierBuild", Napi::Function::New(env, JsClassifierBuild, "classifierBuild"));
  exports.Set("classifierLookupBatch", Napi::Function::New(env, JsClassifierLookupBatch, "classifierLookupBatch"));
  exports.Set("classifierMatches", Napi::Function::New(env, JsClassifierMatches, "classifierMatches"));
  exports.Set("classifierInfo", Napi::Function::New(env, JsClassifierInfo, "classifierInfo"));
  exports.Set("classbenchParseRules", Napi::Function::New(env, JsClassbenchParseRules, "classbenchParseRules"));
  exports.Set("classbenchParseTrace", Napi::Function::New(env, JsClassbenchParseTrace, "classbenchParseTrace"));
  exports.Set("classbenchGenerateTrace", Napi::Function::New(env, JsClassbenchGenerateTrace, "classbenchGenerateTrace"));
  exports.Set("benchLookupLoop", Napi::Function::New(env, JsBenchLookupLoop, "benchLookupLoop"));
  exports.Set("benchUpdates", Napi::Function::New(env, JsBenchUpdates, "benchUpdates"));
}

ZTB_REGISTER_EXPORTS(RegisterClassifier);

}  // namespace
}  // namespace ztb::binding
