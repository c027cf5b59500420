// Status values of the portable core. The core never throws on purpose: fallible calls return a
// Status or a Result<T>; the binding turns a bad Status into a NativeError whose `code` is
// errc_code(). The hot path cannot fail (a lookup that finds nothing returns kNoMatch).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace ztb {

enum class Errc {
  kOk = 0,
  kInvalidArgument,  // malformed input from the caller (bad rule encoding, bad sizes)
  kInvalidRule,      // a rule the compiler cannot represent
  kLimit,            // a configured cap was hit (rules, states, tables)
  kNotFound,         // removing or reading something that does not exist
  kExists,           // inserting something that already exists
  kNoMemory,
  kSystem,           // an OS call failed; errno_value carries the errno
  kUnsupported,
};

inline const char* errc_code(Errc e) {
  switch (e) {
    case Errc::kOk: return "OK";
    case Errc::kInvalidArgument: return "ERR_ZTB_INVALID_ARGUMENT";
    case Errc::kInvalidRule: return "ERR_ZTB_INVALID_RULE";
    case Errc::kLimit: return "ERR_ZTB_LIMIT";
    case Errc::kNotFound: return "ERR_ZTB_NOT_FOUND";
    case Errc::kExists: return "ERR_ZTB_EXISTS";
    case Errc::kNoMemory: return "ERR_ZTB_NO_MEMORY";
    case Errc::kSystem: return "ERR_ZTB_SYSTEM";
    case Errc::kUnsupported: return "ERR_ZTB_UNSUPPORTED";
  }
  return "ERR_ZTB_UNKNOWN";
}

class Status {
 public:
  Status() = default;
  Status(Errc code, std::string message, int errno_value = 0)
      : code_(code), message_(std::move(message)), errno_(errno_value) {}
  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == Errc::kOk; }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  int errno_value() const { return errno_; }

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
  int errno_ = 0;
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}   // NOLINT
  bool is_ok() const { return std::holds_alternative<T>(v_); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  const Status& status() const { return std::get<Status>(v_); }
  T take() { return std::move(std::get<T>(v_)); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ztb
