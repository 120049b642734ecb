/*
 * sql_check.hpp: a check over the text of the SQL that ecto_sync generates,
 * that every name PostgreSQL would look up through search_path is written
 * schema-qualified (DESIGN.md, "Privileges and settings: the rule").
 *
 * The pinned search_path ("pg_catalog, pg_temp") already keeps a caller's
 * schemas out; qualifying every name as well means that no statement
 * depends on it, and this check makes a new unqualified name fail every
 * test that runs the statement (require_pinned() calls it) and the unit
 * tests, instead of waiting for a review to notice it.
 *
 * Pure C++ (no server headers): the unit tests run it without a server.
 */
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ectosync {

/*
 * What sql names that PostgreSQL would look up by name through search_path,
 * one human-readable finding each ("operator = not written
 * OPERATOR(schema.=) at character 31"); empty when there is none.
 *
 * Flagged:
 *  - a function call whose name is not schema-qualified (a name followed
 *    by "("), except the SQL keywords that take parentheses (SELECT, FROM,
 *    EXISTS, VALUES, COALESCE, CAST, ROWS FROM, LATERAL, ANY, ARRAY, ...),
 *    an alias's column list (AS k(c0, c1)) and INSERT INTO's column list;
 *  - an operator not written OPERATOR(schema.op), except * of a select
 *    list or count(*) and = of an UPDATE's SET list (an assignment);
 *  - IN (...), LIKE, ILIKE, SIMILAR TO, BETWEEN, IS [NOT] DISTINCT FROM,
 *    NULLIF, GREATEST, LEAST and a simple CASE x WHEN: they find an
 *    operator by name;
 *  - a type (after ::, in CAST(... AS type), before a string constant)
 *    that is not schema-qualified, except the SQL-standard type keywords
 *    that the grammar maps to pg_catalog (integer, bigint, boolean,
 *    character varying(n), timestamp with time zone, ...);
 *  - a collation not schema-qualified (COLLATE "C"; pg_catalog."C" is).
 *
 * String constants (also E'', U&'', dollar-quoted), parameters, numbers
 * and comments are skipped; a double-quoted identifier is a name ("a"."b"
 * is qualified).
 */
std::vector<std::string> unqualified_names(std::string_view sql);

/*
 * The marker comment that generated SQL writes before a table's name (the
 * comment "ectosync:<relid>"), and the relids that the marker comments of
 * sql name, once each.  Comments only: the same text inside a quoted name or a
 * string constant (a schema may be named so) names nothing
 * (pg/table_names.cpp).
 */
std::string table_marker(uint32_t relid);
std::vector<uint32_t> table_markers(std::string_view sql);

}  // namespace ectosync
