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
 * node's associations nested as load() nests them, ordered by primary key,
 * read as the calling role: a jsonb array.  sync() uses it for rows that
 * enter a value with nested has_many/many_to_many associations, and on
 * cache misses.
 */
Jsonb *load_rows_where(const PlanNode &node, const std::vector<Column> &cols,
                       const std::vector<std::optional<std::string>> &values);

/*
 * The value load() returns (see plan.hpp), read as the calling role;
 * filter may be null.
 */
Jsonb *load_value(uint32_t relid, const Jsonb *assocs, const Jsonb *filter);

/*
 * Raises ERRCODE_INSUFFICIENT_PRIVILEGE unless the current role may SELECT
 * every column of every table of the plan (join tables included).
 */
void check_select_privileges(const Plan &plan);

}  // namespace ectosync
