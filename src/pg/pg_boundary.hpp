/*
 * pg_boundary.hpp: the one place where C++ meets PostgreSQL's error handling.
 *
 * PostgreSQL reports errors with ereport(ERROR), which longjmps to the
 * nearest PG_TRY or to the top of the backend.  A longjmp that crosses a C++
 * frame skips its destructors, and a C++ exception that reaches a C frame of
 * PostgreSQL's is undefined behaviour.  So:
 *
 *  - every function PostgreSQL calls (SQL functions, triggers, callbacks,
 *    the worker's main) wraps its body in pg_entry(), which catches every
 *    C++ exception and re-raises it as an ereport() once no C++ object of
 *    that frame is alive any more;
 *  - a PostgreSQL call that may raise an ERROR (any that allocates, reads
 *    the catalog, runs SQL, or checks for interrupts) goes through
 *    pg_call() whenever a C++ object with a destructor is alive in any
 *    frame between it and the nearest pg_entry(); pg_call() turns the
 *    ereport(ERROR) into a PgError exception.  A PgError is never
 *    swallowed (the exit callbacks, which end the process anyway, aside):
 *    it unwinds to pg_entry(), which re-throws the original error (same
 *    SQLSTATE, message, detail), and PostgreSQL then aborts the
 *    transaction as usual.
 *
 * Calls that cannot raise an ERROR (LWLockRelease, spinlocks, SetLatch,
 * MemoryContextSwitchTo, MemoryContextDelete) need no guard, and code that
 * owns no C++ objects (plain C-style helpers, and the part of an entry
 * point before its first C++ object) may call PostgreSQL directly.
 * OwnedContext gives a memory context back when a call throws.
 *
 * SQL functions are declared with ECTOSYNC_FUNCTION(name) { body }, which
 * runs the body inside pg_entry(): the first rule holds by construction.
 */
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace ectosync {

/* A PostgreSQL error caught by pg_call(); owns the copied ErrorData. */
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData *data) : data_(data) { alive_++; }
  PgError(PgError &&other) noexcept : data_(std::exchange(other.data_, nullptr)) { alive_++; }
  PgError(const PgError &) = delete;
  PgError &operator=(const PgError &) = delete;
  ~PgError() override { alive_--; } /* ErrorData lives in a memory context */

  const char *what() const noexcept override;
  ErrorData *release() { return std::exchange(data_, nullptr); }
  const ErrorData *data() const { return data_; }
  /* Whether one is being thrown or handled: the transaction is then in no
   * state to go on with (SpiScope leaves SPI to the abort). */
  static bool any_alive() { return alive_ > 0; }

 private:
  ErrorData *data_;
  static inline int alive_ = 0;
};

/* An error ecto_sync raises itself: a SQLSTATE and the ereport texts. */
class Error : public std::exception {
 public:
  Error(int sqlstate, std::string message, std::string detail = {}, std::string hint = {})
      : sqlstate(sqlstate),
        message(std::move(message)),
        detail(std::move(detail)),
        hint(std::move(hint)) {}
  const char *what() const noexcept override { return message.c_str(); }

  int sqlstate;
  std::string message, detail, hint;
};

namespace detail {
/* Runs fn() inside PG_TRY; a PostgreSQL error becomes a PgError. */
void pg_try(void (*fn)(void *), void *arg);

/* What an exception said, copied into palloc'd memory: no destructors. */
struct Failure {
  ErrorData *pg_error; /* a PgError's data, re-thrown as it was */
  int sqlstate;
  char *message, *detail, *hint;
};
/* Called inside a catch (...) handler: copies the current exception. */
Failure capture_current_exception() noexcept;
/* Raises a captured failure as ereport(ERROR); never returns. */
[[noreturn]] void raise_failure(const Failure &failure);

/* in_subtransaction()'s steps. */
struct Subtransaction {
  MemoryContext context;
  ResourceOwner owner;
};
Subtransaction begin_subtransaction();
void end_subtransaction(const Subtransaction &sub, bool commit);
/* The Error of a PostgreSQL error that a rollback recovers from; nullopt
 * for a cancel, a shutdown, resources or the system failing. */
std::optional<Error> recovered(const PgError &e);
/* e's error data copied into context (CopyErrorData()'s copy, of a copy). */
PgError copied_into(const PgError &e, MemoryContext context);
}  // namespace detail

/*
 * Call PostgreSQL from C++: pg_call([&] { return SPI_execute(...); }).
 * The lambda itself must hold no C++ objects with destructors.
 */
template <typename Fn>
auto pg_call(Fn &&fn) -> decltype(fn()) {
  using Result = decltype(fn());
  if constexpr (std::is_void_v<Result>) {
    detail::pg_try([](void *f) { (*static_cast<Fn *>(f))(); }, &fn);
  } else {
    std::optional<Result> result;
    auto run = [&] { result.emplace(fn()); };
    detail::pg_try([](void *f) { (*static_cast<decltype(run) *>(f))(); }, &run);
    return std::move(*result);
  }
}

/*
 * fn() in a subtransaction of its own, as in PL/pgSQL's EXCEPTION blocks:
 * it commits when fn() returns and rolls back when fn() throws.  What fn()
 * pallocs goes to the caller's context.  A PostgreSQL error that the
 * rollback recovers from then comes out as an Error (its SQLSTATE and
 * texts): the transaction is sound again, and the caller may go on.  A
 * cancel, or resources or the system failing, stays a PgError.
 */
template <typename Fn>
auto in_subtransaction(Fn &&fn) -> decltype(fn()) {
  using Result = decltype(fn());
  detail::Subtransaction sub = detail::begin_subtransaction();
  std::conditional_t<std::is_void_v<Result>, bool, std::optional<Result>> result{};
  try {
    if constexpr (std::is_void_v<Result>)
      fn();
    else
      result.emplace(fn());
  } catch (PgError &e) {
    /* (read and copied before the rollback, which frees the context its
     * data was copied into when that was the subtransaction's: SPI's, for
     * an fn() that connected) */
    std::optional<Error> error = detail::recovered(e);
    PgError kept = detail::copied_into(e, sub.context);
    detail::end_subtransaction(sub, false);
    if (error) throw *error;
    throw std::move(kept);
  } catch (...) {
    detail::end_subtransaction(sub, false);
    throw;
  }
  detail::end_subtransaction(sub, true);
  if constexpr (!std::is_void_v<Result>) return std::move(*result);
}

/*
 * fn() with CurrentMemoryContext switched to context: what it pallocs goes
 * there.  The caller's context is back afterwards, also when fn() throws.
 */
template <typename Fn>
auto in_context(MemoryContext context, Fn &&fn) -> decltype(fn()) {
  struct Restore {
    MemoryContext caller;
    ~Restore() { MemoryContextSwitchTo(caller); }
  } restore{MemoryContextSwitchTo(context)};
  return fn();
}

/*
 * A memory context that goes with the guard (MemoryContextDelete, which
 * raises no error), unless release() kept it: the one way to give back
 * what a call made, also when it throws.
 */
class OwnedContext {
 public:
  explicit OwnedContext(MemoryContext context) : context_(context) {}
  ~OwnedContext() {
    if (context_) MemoryContextDelete(context_);
  }
  OwnedContext(const OwnedContext &) = delete;
  OwnedContext &operator=(const OwnedContext &) = delete;

  MemoryContext get() const { return context_; }
  MemoryContext release() { return std::exchange(context_, nullptr); }

 private:
  MemoryContext context_;
};

/*
 * Body of an entry point called by PostgreSQL: returns fn()'s result, or
 * raises whatever fn() threw as an ereport(ERROR) after fn()'s objects are
 * gone.
 */
template <typename Fn>
auto pg_entry(Fn &&fn) -> decltype(fn()) {
  detail::Failure failure = {};
  try {
    return fn();
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  /* The exception object is destroyed here; failure is plain data. */
  detail::raise_failure(failure);
}

}  // namespace ectosync

/* Argument n of a SQL function as jsonb, detoasted; nullptr for SQL NULL. */
inline Jsonb *jsonb_arg_or_null(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : PG_GETARG_JSONB_P(n);
}

/*
 * ECTOSYNC_FUNCTION(name) { body }: a function SQL calls (CREATE FUNCTION
 * ... LANGUAGE C), as pg_duckdb's DECLARE_PG_FUNCTION: declares it
 * (PG_FUNCTION_INFO_V1) and runs body, which sees fcinfo and returns a
 * Datum, inside pg_entry().  The body reads its arguments, and may
 * ereport(), directly while it owns no C++ object with a destructor (a
 * longjmp then skips none); with such objects alive, it calls PostgreSQL
 * through pg_call().
 */
#define ECTOSYNC_FUNCTION(name)                                            \
  extern "C" {                                                             \
  PG_FUNCTION_INFO_V1(name);                                               \
  }                                                                        \
  static Datum name##_body(FunctionCallInfo fcinfo);                       \
  extern "C" Datum name(PG_FUNCTION_ARGS) {                                \
    return ::ectosync::pg_entry([fcinfo] { return name##_body(fcinfo); }); \
  }                                                                        \
  static Datum name##_body(FunctionCallInfo fcinfo)
