/*
 * table_names.hpp: the names of tables in the SQL that ecto_sync generates,
 * checked against the oids they were taken from (table_names.cpp).
 */
#pragma once

#include <cstdint>
#include <string>

namespace ectosync {

/*
 * The table relid as generated SQL names it: a marker comment with its oid,
 * then qualified (its quoted schema and name, "ONLY " before them when
 * only_rows).  The parse analysis hook (table_names_init()) raises when a
 * query with markers reads a relation that none of them names.
 */
std::string named_table(uint32_t relid, const std::string &qualified, bool only_rows);

}  // namespace ectosync
