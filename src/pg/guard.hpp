// guard.hpp: the C++ / PostgreSQL error boundary (see DESIGN.md §5).
//
// PostgreSQL reports errors with longjmp, C++ with exceptions; neither may
// cross frames of the other.  Two tools, used everywhere:
//   - pg_call(f): runs f, which calls PostgreSQL functions, under PG_TRY.  An
//     ereport inside becomes a C++ PgError thrown *after* PG_END_TRY, so C++
//     destructors run normally.  f itself must not own objects with
//     destructors across a PostgreSQL call (the longjmp would skip them).
//   - cpp_entry(f): wraps every function PostgreSQL calls (SQL functions,
//     triggers; cpp_callback for callbacks returning nothing, such as the
//     output plugin's).  It catches every C++ exception and re-raises it as
//     ereport(ERROR) once all C++ frames below it are gone.
#pragma once
#include "pg/pg.hpp"

#include <exception>
#include <optional>
#include <type_traits>
#include <string>
#include <utility>

namespace ivm::pg {

// PgError: a PostgreSQL error travelling through C++ frames.
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData* data) : data_(data) {}
  const char* what() const noexcept override { return data_ && data_->message ? data_->message : "error"; }
  ErrorData* data() const { return data_; }

 private:
  ErrorData* data_;  // palloc'd in the caller's memory context
};

// Error: an error ivm raises itself, with PostgreSQL's fields.
class Error : public std::exception {
 public:
  Error(int sqlstate, std::string message, std::string detail = "", std::string hint = "")
      : sqlstate(sqlstate), message(std::move(message)), detail(std::move(detail)), hint(std::move(hint)) {}
  const char* what() const noexcept override { return message.c_str(); }
  int sqlstate;
  std::string message, detail, hint;
};

[[noreturn]] inline void not_supported(const std::string& what, const std::string& hint = "") {
  throw Error(ERRCODE_FEATURE_NOT_SUPPORTED, what + " not supported in incremental views", "", hint);
}

// run_guarded: calls fn(arg) under PG_TRY; an ereport becomes a PgError.
void run_guarded(void (*fn)(void*), void* arg);

template <typename F>
auto pg_call(F&& f) -> decltype(f()) {
  using R = decltype(f());
  if constexpr (std::is_void_v<R>) {
    auto call = [&] { f(); };
    run_guarded([](void* p) { (*static_cast<decltype(call)*>(p))(); }, &call);
  } else {
    std::optional<R> result;
    auto call = [&] { result.emplace(f()); };
    run_guarded([](void* p) { (*static_cast<decltype(call)*>(p))(); }, &call);
    return std::move(*result);
  }
}

// raise: report a caught exception as a PostgreSQL error.  Called by
// cpp_entry after the try block, when no C++ frame with live objects is left.
[[noreturn]] void raise(std::exception_ptr e);

template <typename F>
Datum cpp_entry(F&& f) {
  std::exception_ptr failure;
  try {
    return f();
  } catch (...) {
    failure = std::current_exception();
  }
  raise(std::move(failure));
}

// cpp_callback: cpp_entry for callbacks that return nothing (the output
// plugin's begin/change/commit, ...).
template <typename F>
void cpp_callback(F&& f) {
  std::exception_ptr failure;
  try {
    f();
    return;
  } catch (...) {
    failure = std::current_exception();
  }
  raise(std::move(failure));
}

}  // namespace ivm::pg

// IVM_FUNCTION: declares an SQL-callable function whose body is C++.
#define IVM_FUNCTION(name)                                         \
  static Datum name##_cpp(PG_FUNCTION_ARGS);                       \
  extern "C" {                                                     \
  PG_FUNCTION_INFO_V1(name);                                       \
  Datum name(PG_FUNCTION_ARGS) {                                   \
    return ivm::pg::cpp_entry([&] { return name##_cpp(fcinfo); }); \
  }                                                                \
  }                                                                \
  static Datum name##_cpp(PG_FUNCTION_ARGS)
