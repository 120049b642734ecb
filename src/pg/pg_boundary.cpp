/*
 * pg_boundary.cpp: PG_TRY around PostgreSQL calls made from C++, and the
 * conversion of C++ exceptions into ereport(ERROR) at entry points.
 */
#include "pg/pg_boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <new>

namespace ectosync {

const char *PgError::what() const noexcept {
  return data_ && data_->message ? data_->message : "PostgreSQL error";
}

namespace detail {

void pg_try(void (*fn)(void *), void *arg) {
  MemoryContext caller_context = CurrentMemoryContext;
  ErrorData *volatile error = nullptr;
  std::exception_ptr thrown; /* only set by a C++ throw inside fn */

  PG_TRY();
  {
    /* A C++ exception must not unwind through PG_TRY's sigsetjmp frame. */
    try {
      fn(arg);
    } catch (...) {
      thrown = std::current_exception();
    }
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_context);
    error = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();

  if (thrown) std::rethrow_exception(thrown);
  if (error) throw PgError(error);
}

Failure capture_current_exception() noexcept {
  Failure failure = {nullptr, ERRCODE_INTERNAL_ERROR, nullptr, nullptr, nullptr};
  auto copy = [](const std::string &text) -> char * {
    return text.empty() ? nullptr : pstrdup(text.c_str());
  };
  try {
    throw;
  } catch (PgError &e) {
    failure.pg_error = e.release();
  } catch (Error &e) {
    failure.sqlstate = e.sqlstate;
    failure.message = copy(e.message);
    failure.detail = copy(e.detail);
    failure.hint = copy(e.hint);
  } catch (std::bad_alloc &) {
    failure.sqlstate = ERRCODE_OUT_OF_MEMORY;
    failure.message = pstrdup("ecto_sync: out of memory");
  } catch (std::exception &e) {
    failure.message = psprintf("ecto_sync internal error: %s", e.what());
  } catch (...) {
    failure.message = pstrdup("ecto_sync internal error: unknown exception");
  }
  return failure;
}

Subtransaction begin_subtransaction() {
  Subtransaction sub{CurrentMemoryContext, CurrentResourceOwner};
  pg_call([&] {
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(sub.context);
  });
  return sub;
}

void end_subtransaction(const Subtransaction &sub, bool commit) {
  pg_call([&] {
    if (commit)
      ReleaseCurrentSubTransaction();
    else
      RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(sub.context);
    CurrentResourceOwner = sub.owner;
  });
}

std::optional<Error> recovered(const PgError &e) {
  const ErrorData *data = e.data();
  if (!data || data->elevel > ERROR) return std::nullopt;
  for (char cls : {'3', '7', '8'}) /* 53, 57, 58: resources, operator, system */
    if (ERRCODE_TO_CATEGORY(data->sqlerrcode) == MAKE_SQLSTATE('5', cls, '0', '0', '0'))
      return std::nullopt;
  if (ERRCODE_TO_CATEGORY(data->sqlerrcode) == ERRCODE_INTERNAL_ERROR) return std::nullopt;
  return Error(data->sqlerrcode, data->message ? data->message : "",
               data->detail ? data->detail : "", data->hint ? data->hint : "");
}

PgError copied_into(const PgError &e, MemoryContext context) {
  const ErrorData *from = e.data();
  if (!from) return PgError(nullptr);
  return pg_call([&] {
    MemoryContext old = MemoryContextSwitchTo(context);
    ErrorData *to = (ErrorData *)palloc(sizeof(ErrorData));
    *to = *from;
    for (char **text : {&to->message, &to->detail, &to->detail_log, &to->hint, &to->context,
                        &to->backtrace, &to->schema_name, &to->table_name, &to->column_name,
                        &to->datatype_name, &to->constraint_name, &to->internalquery})
      if (*text) *text = pstrdup(*text);
    to->assoc_context = context;
    MemoryContextSwitchTo(old);
    return PgError(to);
  });
}

void raise_failure(const Failure &failure) {
  if (failure.pg_error) ReThrowError(failure.pg_error);
  ereport(ERROR, (errcode(failure.sqlstate), errmsg("%s", failure.message),
                  failure.detail ? errdetail("%s", failure.detail) : 0,
                  failure.hint ? errhint("%s", failure.hint) : 0));
  pg_unreachable();
}

}  // namespace detail
}  // namespace ectosync
