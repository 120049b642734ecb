/*
 * catalog.hpp: what load(), sync() and watch() ask of the catalog and of the
 * tables.  Implemented in catalog.cpp and load.cpp; every function here may
 * throw Error or PgError (it calls PostgreSQL through pg_call).
 */
#pragma once

#include "core/plan.hpp"

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <optional>
#include <string>
#include <vector>

namespace ectosync {

/*
 * The plan of a value rooted at relid with the given assocs spec (any
 * accepted form, or the normalized one stored in values).  Cached per
 * backend; the cache is dropped when watches change.  Errors name the
 * unknown table or association.
 */
const Plan &resolve_plan(uint32_t relid, const Jsonb *assocs);

/*
 * Rows of node.table where cols = values (SQL NULL for nullopt), each with
 * node's associations nested as load() nests them, in its query's order,
 * read as the calling role: a jsonb array; with window, only the rows of
 * the query's limit and offset.  sync() uses it for rows that
 * enter a value with nested has_many/many_to_many associations, and on
 * cache misses.
 */
Jsonb *load_rows_where(const PlanNode &node, const std::vector<Column> &cols,
                       const std::vector<std::optional<std::string>> &values, bool window);

/*
 * Where a list of a value comes from: the root rows (that equal a value's
 * filter, if it has one), or the has_many/many_to_many association assoc
 * of an owner row whose owner columns hold owner.
 */
struct ListSource {
  const Assoc *assoc = nullptr; /* nullptr: the root */
  std::vector<std::optional<std::string>> owner;
  const Jsonb *filter = nullptr; /* the root's */
};

/*
 * The rows of a list of node's rows, nested and read as load() reads them,
 * as the calling role: the list's window (its query's limit and offset);
 * with exclude, the first `next` rows in the query's order whose primary
 * keys are not in exclude (the rows that follow a window, read by the
 * index of its order when there is one).
 */
Jsonb *load_list(const PlanNode &node, const ListSource &source,
                 const std::vector<std::vector<std::optional<std::string>>> *exclude = nullptr,
                 int64_t next = 0);

/*
 * The value load() returns (see plan.hpp), read as the calling role, and
 * sealed under row level security (seal.hpp); filter may be null.
 */
Jsonb *load_value(uint32_t relid, const Jsonb *assocs, const Jsonb *filter);
/* Whether load_value() refuses a value that no watch captures
 * (captured.cpp): always, but for a load() only read (load_unwatched),
 * which marks it "unwatched" instead (sync() refuses it). */
enum class Capture { Required, Optional };
/* The same of a plan resolved (and checked) already: no name of it is
 * looked up again, and the query's markers name the plan's tables. */
Jsonb *load_value(const Plan &plan, const Jsonb *filter, Capture capture = Capture::Required);
/* The filter as values carry it: each value as to_jsonb renders it for its
 * column, cast under the pinned settings ("null": none). */
std::string normalized_filter(const TableInfo &root, const Jsonb *filter);
/* Refuses a transaction snapshot (REPEATABLE READ, SERIALIZABLE) in what(). */
void refuse_transaction_snapshot(const char *what);
/* Refuses, in what(), a transaction that changed a table of plan. */
void refuse_own_changes(const Plan &plan, const char *what);

/*
 * Raises ERRCODE_INSUFFICIENT_PRIVILEGE unless the current role may SELECT
 * every column of every table of the plan (join tables included).
 */
void check_select_privileges(const Plan &plan);

/*
 * Whether relid has row level security enabled (its policies decide what
 * some role sees), whoever asks; false for a table that is gone.
 */
bool row_security_enabled(uint32_t relid);
/* Whether the current role bypasses row level security (superuser, BYPASSRLS). */
bool bypasses_row_security();
/* Whether row level security applies to the caller on a table of plan
 * (its values are not shared, and a client's carry a seal: seal.hpp). */
bool row_security(const Plan &plan);

}  // namespace ectosync
