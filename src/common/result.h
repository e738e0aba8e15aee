// Result<T> and Error: the return type of every fallible function. Any thread.
//
// Portico does not throw on the data plane. A function that can fail returns Result<T>, which holds
// either a value or an Error (a kind, a source and a message). Libraries that throw (yaml-cpp,
// nlohmann-json) are wrapped at the edge of the control plane and converted to Error there.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace portico {

enum class ErrorKind {
  kInvalidArgument,  // the input (configuration, request) is wrong
  kNotFound,
  kUnavailable,  // a peer is down or refused
  kTimeout,
  kIo,
  kInternal,  // a bug: logged and counted
};

// Where an error came from, so that callers can decide on retries and status codes (Pingora's
// shape).
enum class ErrorSource { kInternal, kDownstream, kUpstream, kConfig };

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  ErrorSource source = ErrorSource::kInternal;
  std::string message;

  static Error invalid(std::string msg) {
    return {ErrorKind::kInvalidArgument, ErrorSource::kConfig, std::move(msg)};
  }
  static Error io(std::string msg) {
    return {ErrorKind::kIo, ErrorSource::kInternal, std::move(msg)};
  }
  static Error not_found(std::string msg) {
    return {ErrorKind::kNotFound, ErrorSource::kInternal, std::move(msg)};
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace portico
