// Module entry: the ABI version, the error-class hand-over, and the registry walk. Every other
// export lives in the binding file of its feature.
#include "binding/registry.h"

namespace ztb::binding {

// Bumped whenever an export changes shape; src/engine/native.ts refuses a mismatch.
constexpr uint32_t kAbiVersion = 1;

std::vector<ExportInit>& export_registry() {
  static std::vector<ExportInit> registry;
  return registry;
}

Napi::FunctionReference& native_error_ctor() {
  static Napi::FunctionReference ctor;
  return ctor;
}

void throw_code(Napi::Env env, const char* code, const std::string& message) {
  Napi::Object err;
  if (!native_error_ctor().IsEmpty()) {
    err = native_error_ctor().New({Napi::String::New(env, message), Napi::String::New(env, code)});
  } else {
    err = Napi::Error::New(env, message).Value();
    err.Set("code", Napi::String::New(env, code));
  }
  throw Napi::Error(env, err);
}

namespace {

Napi::Value JsAbiVersion(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), kAbiVersion);
}

Napi::Value JsSetErrorClass(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(info.Env(), "setErrorClass(ctor: Function)");
  }
  native_error_ctor() = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Function::New(env, JsAbiVersion, "abiVersion"));
  exports.Set("setErrorClass", Napi::Function::New(env, JsSetErrorClass, "setErrorClass"));
  for (ExportInit fn : export_registry()) fn(env, exports);
  return exports;
}

}  // namespace ztb::binding

static Napi::Object ZtbInit(Napi::Env env, Napi::Object exports) { return ztb::binding::Init(env, exports); }

NODE_API_MODULE(ztb_native, ZtbInit)
