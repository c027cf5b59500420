// Binding for native/io/tap.h: argument checks and conversions only. Errors become NativeErrors
// carrying `errno` so src/net can map them to NetlinkError-style messages naming the object.
#include "binding/registry.h"

#if defined(__linux__)
#include "io/tap.h"
#endif

namespace ztb::binding {
namespace {

#if defined(__linux__)

[[noreturn]] void throw_status(Napi::Env env, const Status& st) {
  Napi::Object err;
  if (!native_error_ctor().IsEmpty()) {
    err = native_error_ctor().New(
        {Napi::String::New(env, st.message()), Napi::String::New(env, errc_code(st.code()))});
  } else {
    err = Napi::Error::New(env, st.message()).Value();
    err.Set("code", Napi::String::New(env, errc_code(st.code())));
  }
  if (st.errno_value() != 0) err.Set("errno", Napi::Number::New(env, st.errno_value()));
  throw Napi::Error(env, err);
}

long optional_id(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return -1;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("tapCreate: ") + key + " must be a number");
  int64_t n = v.As<Napi::Number>().Int64Value();
  if (n < 0 || n > 0xfffffffeLL) throw Napi::TypeError::New(o.Env(), std::string("tapCreate: ") + key + " out of range");
  return static_cast<long>(n);
}

// tapCreate(name: string, opts?: {owner?: number, group?: number}): string
Napi::Value JsTapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString() || (info.Length() > 1 && !info[1].IsObject() && !info[1].IsUndefined())) {
    throw Napi::TypeError::New(env, "tapCreate(name: string, opts?: {owner?: number, group?: number})");
  }
  io::TapOptions opts;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    opts.owner = optional_id(o, "owner");
    opts.group = optional_id(o, "group");
  }
  Result<std::string> r = io::tap_create(info[0].As<Napi::String>().Utf8Value(), opts);
  if (!r.is_ok()) throw_status(env, r.status());
  return Napi::String::New(env, r.value());
}

// netnsCall(path: string, fn: () => T): T — runs fn synchronously with the calling thread inside
// the namespace at path; sockets and taps opened by fn stay in that namespace.
Napi::Value JsNetnsCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "netnsCall(path: string, fn: Function)");
  }
  io::NetnsGuard guard;
  Status st = guard.enter(info[0].As<Napi::String>().Utf8Value());
  if (!st.is_ok()) throw_status(env, st);
  Napi::Value result = info[1].As<Napi::Function>().Call({});
  st = guard.restore();
  if (!st.is_ok()) throw_status(env, st);
  return result;
}

// netnsCreate(dir: string, name: string): void
Napi::Value JsNetnsCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "netnsCreate(dir: string, name: string)");
  }
  Status st = io::netns_create(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  if (!st.is_ok()) throw_status(env, st);
  return env.Undefined();
}

// netnsDelete(dir: string, name: string): void
Napi::Value JsNetnsDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "netnsDelete(dir: string, name: string)");
  }
  Status st = io::netns_delete(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  if (!st.is_ok()) throw_status(env, st);
  return env.Undefined();
}

#else

Napi::Value JsUnsupported(const Napi::CallbackInfo& info) {
  throw_code(info.Env(), "ERR_ZTB_UNSUPPORTED", "tap devices and network namespaces need Linux");
}

#endif

void RegisterTapExports(Napi::Env env, Napi::Object exports) {
#if defined(__linux__)
  exports.Set("tapCreate", Napi::Function::New(env, JsTapCreate, "tapCreate"));
  exports.Set("netnsCall", Napi::Function::New(env, JsNetnsCall, "netnsCall"));
  exports.Set("netnsCreate", Napi::Function::New(env, JsNetnsCreate, "netnsCreate"));
  exports.Set("netnsDelete", Napi::Function::New(env, JsNetnsDelete, "netnsDelete"));
#else
  for (const char* n : {"tapCreate", "netnsCall", "netnsCreate", "netnsDelete"}) {
    exports.Set(n, Napi::Function::New(env, JsUnsupported, n));
  }
#endif
}

}  // namespace

ZTB_REGISTER_EXPORTS(RegisterTapExports);

}  // namespace ztb::binding
