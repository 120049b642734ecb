/*
 * sql_context.hpp: what every SQL statement that ecto_sync generates runs
 * under: fixed settings, whoever calls it and however its session is set,
 * and, where it runs with rights other than its caller's, which role.
 *
 * Two rules meet here (DESIGN.md, "Privileges and settings"):
 *
 *  - No code that a role defines runs with more rights than that role has.
 *    ecto_sync runs SQL as a superuser (watch(), the event triggers), as a
 *    table's owner (the worker) and as callers whose rows every role is
 *    then served from (the shared cache).  Names in that SQL must never
 *    resolve through a schema the caller controls: search_path is
 *    "pg_catalog, pg_temp" (pg_temp named last, so that it comes after
 *    pg_catalog for types and relations too; functions and operators are
 *    never looked up there), and the SQL qualifies what it names anyway.
 *
 *  - A value never depends on who rendered a row.  to_jsonb() renders
 *    timestamptz by TimeZone, intervals by IntervalStyle, floats by
 *    extra_float_digits, bytea by bytea_output and money by lc_monetary:
 *    load(), the worker and cache misses all render under the same fixed
 *    values, so that a cached row equals what a fresh load() returns in any
 *    session.
 *
 * PinnedSettings sets them for its lifetime in a new GUC nest level, as a
 * function's SET clause does; nested guards cost nothing.  Names that the
 * caller typed (a table in an assocs spec, a table shown in a message) are
 * read with the caller's own search_path: with_caller_search_path().
 */
#pragma once

#include "pg/pg_boundary.hpp"

#include <string>
#include <utility>
#include <vector>

namespace ectosync {

class PinnedSettings {
 public:
  PinnedSettings();
  ~PinnedSettings();
  PinnedSettings(const PinnedSettings &) = delete;
  PinnedSettings &operator=(const PinnedSettings &) = delete;

 private:
  int nest_level_ = -1; /* -1: an outer guard pinned them already */
};

/* SET name = value for the current GUC nest level, as a function's SET
 * clause does (PostgreSQL's call: pg_call() it). */
void set_for_nest_level(const char *name, const char *value);

/*
 * While alive, the current user is role, in a security-restricted operation
 * (as REFRESH MATERIALIZED VIEW runs a view's query as its owner): code that
 * the SQL reaches (an owner's cast, an output function) runs with role's
 * rights and cannot change the session (SET ROLE, temporary objects,
 * cursors that outlive it).  Declare a PinnedSettings after it, so that
 * the settings are restored before the user, as PostgreSQL does.
 */
class AsRole {
 public:
  explicit AsRole(Oid role);
  ~AsRole();
  AsRole(const AsRole &) = delete;
  AsRole &operator=(const AsRole &) = delete;

 private:
  Oid user_ = InvalidOid;
  int context_ = 0;
};

/*
 * Makes the pinned values the session's own, for a background worker that
 * runs nothing else: its guards then find them in force and set nothing.
 */
void pin_settings_for_session();

/* Whether ecto_sync runs its own SQL: a PinnedSettings guard is alive, or
 * the session pinned them (the worker).  Code a statement reaches (a
 * table owner's function) runs within it too. */
bool running_generated_sql();

/* The search_path pinned settings use: "pg_catalog, pg_temp". */
extern const char *const kPinnedSearchPath;

/*
 * Raises an internal error unless a PinnedSettings guard is alive with its
 * search_path in force, and when sql names an operator, function, type or
 * collation unqualified (sql_check.hpp): spi_execute() and the worker's
 * prepare call it before every statement ecto_sync runs, so that every
 * test proves that no statement escapes the guard or the qualification.
 */
void require_pinned(const std::string &sql);

/*
 * require_pinned() but for the text check, which costs about 10 us a
 * statement: for a statement whose text passed it already (a saved plan,
 * which spi_execute_saved() checks when it prepares it).
 */
void require_pinned_settings(const std::string &sql);

/*
 * After a statement: raises 2F003 when a pinned setting no longer has its
 * pinned value.  Code that the statement ran (a cast to json, a policy's
 * function) may SET one for the rest of the guard's life: the rows read
 * after it, and by any ecto_sync call it made, would render otherwise
 * than in every other session, and a cache miss would serve them to
 * every role.
 */
void require_settings_unchanged();

/*
 * The session's custom settings now, in name order: names with a dot that
 * no loaded module defines (PostgreSQL's placeholders), which row level
 * security policies may read (current_setting('app.tenant'),
 * request.jwt.claims).  Held values read under those they were held with
 * (held_settings.cpp); a value's seal covers them (value/seal.hpp).
 */
using CustomSettings = std::vector<std::pair<std::string, std::string>>;
CustomSettings custom_settings();

/* The caller's own search_path: before the outermost guard, or the current one. */
std::string caller_search_path();

/*
 * Whether the transaction reads what every session reads: no writes of its
 * own, no transaction snapshot.  Only then may what it reads be shared
 * (the cache, a shared held value) or decide a value for good.
 */
bool reads_committed_now();

/*
 * Runs fn() (which must own no C++ objects) with the search_path the caller
 * had before the outermost PinnedSettings: for relation names only, which
 * run no code.  Without a guard alive, fn() runs as it is.
 */
void with_caller_search_path(void (*fn)(void *), void *arg);

template <typename Fn>
auto with_caller_search_path(Fn &&fn) -> decltype(fn()) {
  decltype(fn()) result{};
  auto run = [&] { result = fn(); };
  with_caller_search_path([](void *f) { (*static_cast<decltype(run) *>(f))(); }, &run);
  return result;
}

}  // namespace ectosync
