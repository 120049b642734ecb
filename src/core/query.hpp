/*
 * query.hpp: a list's "$query", parsed and checked against the catalog.
 * Pure C++ (no postgres.h), unit-tested without a server.
 *
 * FORM.  One JSON object, under the key "$query" at the top of an assocs
 * spec (the root rows) or in the nested spec of a has_many or many_to_many
 * association (each parent's list):
 *
 *   {"where": ..., "order_by": ..., "limit": 20, "offset": 40}
 *
 *   where     {"col": value, ...}: each column equal to its value (null:
 *             IS NULL); or an array of conditions, all of which must hold:
 *               ["col", op, value]   op: = <> != < <= > >=
 *               ["col", "in", [value, ...]]
 *               ["col", "is null"], ["col", "is not null"]
 *               {"or": [where, ...]}   one of the wheres holds (object
 *                                      or array form; nested up to 8 deep)
 *   order_by  "col", {"col": direction}, or an array of these; direction:
 *             "asc" or "desc", optionally followed by "nulls first" or
 *             "nulls last" (default as SQL's: NULLS LAST ascending, NULLS
 *             FIRST descending).  Ties are broken by the primary key.
 *   limit, offset   integers >= 0: the window of the ordered rows.
 *
 * Columns must be of a kind sync() can compare exactly as the server does
 * (plan.hpp's KeyKind: numbers, text, varchar, uuid, char, boolean, date,
 * timestamp, timestamptz); strings compare bytewise (COLLATE "C").
 *
 * NORMALIZED (in a value's "assocs" and in specs, compared as text):
 *   {"limit": 20, "where": [["published", "=", true]], "offset": 40,
 *    "order_by": [{"inserted_at": "desc nulls first"}]}
 * members in jsonb's order and present only when given (offset only when
 * above 0), the object form of where as "=" and "is null" conditions,
 * directions in full, and values as to_jsonb renders the column's type.
 */
#pragma once

#include "core/assoc.hpp"
#include "core/json.hpp"
#include "core/plan.hpp"

#include <string>

namespace ectosync {

/*
 * Parses query (the "$query" member) for a list of table's rows into q,
 * and returns its normalized text.  Throws AssocError naming the column,
 * operator or option that is wrong (22023, 42703 for an unknown column,
 * 0A000 for a column that cannot be compared).
 */
std::string parse_query(CatalogSource &catalog, const TableDesc &table, const Json &query,
                        ListQuery &q);

}  // namespace ectosync
