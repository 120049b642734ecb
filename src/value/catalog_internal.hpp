/*
 * catalog_internal.hpp: helpers that catalog.cpp, load.cpp and watch.cpp
 * share: the SPI helpers (pg/spi.hpp), table quoting, and the catalog as
 * the pure association code (assoc.hpp) sees it.
 */
#pragma once

#include "core/assoc.hpp"
#include "pg/pg_boundary.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ectosync {

/*
 * What a query reads a table's rows from: ONLY "schema"."name", quoted where
 * needed (not the rows of tables that inherit from it, which its capture
 * triggers do not see), or "schema"."name" of a partitioned table.
 */
std::string quoted_table(const TableInfo &table);

/*
 * The catalog read through SPI (needs an SpiScope), cached for its
 * lifetime.  Without render_values, a $query value is taken as written
 * (a stored spec's, rendered when it was watched): no cast, no code.
 */
std::unique_ptr<CatalogSource> make_catalog_source(bool render_values = true);

/* JSON text as jsonb prints it (", " and ": "). */
std::string jsonb_style_text(const Json &value);
/* The text a type's input function is given for a JSON value: a string's
 * own text, else jsonb_style_text(). */
std::string json_input_text(const Json &value);

/*
 * A spec or a filter is rendered once and kept (plans, shared and held
 * values): a value of a date or time column that names a time that moves
 * on (now, today, tomorrow, yesterday) would stay what it first read, and
 * is refused (22023).
 */
void refuse_moving_time(const std::string &table, const ColumnDesc &col, const Json &value,
                        const std::string &what);

/*
 * value (JSON) as to_jsonb renders it for a column of type sql_type (JSON
 * text), cast as the caller; Error "invalid <what> for "<column>" of table
 * <table>" when it is not a value of the type, or renders as another JSON
 * type (a number given for a text column).
 */
std::string render_as_column(const std::string &table, const std::string &column,
                             const std::string &type_name, const std::string &sql_type,
                             const Json &value, const std::string &what);

/* An AssocError as an Error with the same SQLSTATE and texts. */
Error to_error(const AssocError &e);

/* A plan of a spec given as JSON text; uncached (watch uses it).
 * render_values: as make_catalog_source(). */
Plan resolve_plan_text(uint32_t relid, const std::string &spec_text, bool render_values = true);

}  // namespace ectosync
