// Binding for native/io/pf_dev.h (OpenBSD only; on other systems this file compiles to nothing and
// the addon has no pf exports, which src/backends/pf/device.ts reports as a BackendError).
// Argument checks and conversions only: pfIoctl returns the errno (0 = success) so the TypeScript
// side can name the failed request and map EBUSY/EINVAL/ENOENT to typed errors.
#include "binding/registry.h"

#if defined(__OpenBSD__)

#include <cstdint>
#include <string>

#include "io/pf_dev.h"

namespace ztb::binding {
namespace {

// pfOpen(path: string, writable: boolean): number
Napi::Value JsPfOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsBoolean()) {
    throw Napi::TypeError::New(env, "pfOpen(path: string, writable: boolean)");
  }
  Result<int> r = io::pf_open(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Boolean>().Value());
  if (!r.is_ok()) {
    throw_code(env, errc_code(r.status().code()), r.status().message());
  }
  return Napi::Number::New(env, r.value());
}

// pfIoctl(fd: number, request: number, arg: Buffer, ptrOffset: number, payload: Buffer | null): number
Napi::Value JsPfIoctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBuffer() || !info[3].IsNumber() ||
      !(info[4].IsBuffer() || info[4].IsNull())) {
    throw Napi::TypeError::New(env, "pfIoctl(fd: number, request: number, arg: Buffer, ptrOffset: number, payload: Buffer | null)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t req = info[1].As<Napi::Number>().Int64Value();
  if (req < 0 || req > 0xffffffffLL) throw Napi::TypeError::New(env, "pfIoctl: request out of range");
  auto arg = info[2].As<Napi::Buffer<uint8_t>>();
  int64_t off = info[3].As<Napi::Number>().Int64Value();
  uint8_t* payload = nullptr;
  if (info[4].IsBuffer()) {
    if (off < 0) throw Napi::TypeError::New(env, "pfIoctl: ptrOffset must be >= 0 with a payload");
    payload = info[4].As<Napi::Buffer<uint8_t>>().Data();
  }
  int e = io::pf_ioctl(fd, static_cast<unsigned long>(req), arg.Data(), arg.Length(), static_cast<size_t>(off < 0 ? 0 : off),
                       payload);
  return Napi::Number::New(env, e);
}

// pfClose(fd: number): void
Napi::Value JsPfClose(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "pfClose(fd: number)");
  io::pf_close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("pfOpen", Napi::Function::New(env, JsPfOpen, "pfOpen"));
  exports.Set("pfIoctl", Napi::Function::New(env, JsPfIoctl, "pfIoctl"));
  exports.Set("pfClose", Napi::Function::New(env, JsPfClose, "pfClose"));
}

ZTB_REGISTER_EXPORTS(Register);

}  // namespace
}  // namespace ztb::binding

#endif  // __OpenBSD__
