// The addon's export registry. Each binding file registers its own exports with
// ZTB_REGISTER_EXPORTS, so no central file has to know every feature (the engine, tap devices, pf
// ioctls are written and built independently). Registration runs during static initialisation;
// Init() in addon.cc walks the list once per module load.
#pragma once

#include <napi.h>

#include <vector>

namespace ztb::binding {

using ExportInit = void (*)(Napi::Env env, Napi::Object exports);

std::vector<ExportInit>& export_registry();

struct ExportRegistrar {
  explicit ExportRegistrar(ExportInit fn) { export_registry().push_back(fn); }
};

// The error class handed in by TypeScript at load (NativeError), used by throw_status().
Napi::FunctionReference& native_error_ctor();

// Throws a NativeError with a string code (e.g. "ERR_ZTB_INVALID_RULE") and message.
[[noreturn]] void throw_code(Napi::Env env, const char* code, const std::string& message);

}  // namespace ztb::binding

#define ZTB_CONCAT_INNER(a, b) a##b
#define ZTB_CONCAT(a, b) ZTB_CONCAT_INNER(a, b)
#define ZTB_REGISTER_EXPORTS(fn) \
  static ::ztb::binding::ExportRegistrar ZTB_CONCAT(ztb_registrar_, __LINE__)(fn)
