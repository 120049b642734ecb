/*
 * table_names.cpp: a table named in generated SQL is the table its name
 * was taken from, or the query does not run.
 *
 * ecto_sync reads tables through SQL, which names them by schema and name,
 * taken from their oids.  Between the two a schema's owner may rename the
 * schema and create, under the old name, a view or table of its own: a
 * query would then read it, running the owner's functions with the rights
 * of whoever reads (the worker reads as the watched table's owner), and
 * cache what it returns as the watched table's rows.  Names are taken again
 * whenever a schema changes (value/catalog.cpp, worker/table_meta.cpp);
 * what stays is a rename between taking a name and parsing the query, and
 * a saved plan that PostgreSQL analyzes again from its text.
 *
 * So every table name in generated SQL comes after a marker comment with
 * its oid (named_table()), and a post_parse_analyze_hook, installed in
 * _PG_init, checks each query analyzed while ecto_sync runs its own SQL
 * (pinned settings in force) whose text has markers: every relation it
 * reads must be one that a marker names, or a system catalog.  Markers are
 * comments: the same text inside a quoted name (a schema's name may
 * hold a marker's text) or a string constant marks nothing.
 * It runs before the query does, whenever PostgreSQL analyzes it again.
 * Which marker goes with which name is not checked: the relations are
 * those of one value's tables, which its reader may read anyway.
 */
#include "pg/table_names.hpp"
#include "core/sql_check.hpp"
#include "pg/pg_boundary.hpp"

extern "C" {
#include "postgres.h"

#include "catalog/pg_namespace.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "utils/lsyscache.h"
}

#include "pg/sql_context.hpp"
#include "settings.hpp"

#include <cctype>
#include <cstdlib>
#include <cstring>

namespace ectosync {

namespace {

post_parse_analyze_hook_type prev_post_parse_analyze = nullptr;

/* The relids a query's markers name. */
struct Marked {
  Oid *relids;
  int n;
};

/* Raises unless every relation that node (a query, a subquery) reads is
 * marked or a system catalog.  Plain C: a tree walker. */
bool check_relations(Node *node, void *context) {
  if (node == nullptr) return false;
  const Marked *marked = static_cast<const Marked *>(context);
  auto walker = reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(check_relations));
  if (IsA(node, Query))
    return query_tree_walker(castNode(Query, node), walker, context, QTW_EXAMINE_RTES_BEFORE);
  if (IsA(node, RangeTblEntry)) {
    RangeTblEntry *rte = castNode(RangeTblEntry, node);
    bool named = false;
    for (int i = 0; i < marked->n && !named; i++) named = marked->relids[i] == rte->relid;
    if (rte->rtekind == RTE_RELATION && !named &&
        get_rel_namespace(rte->relid) != PG_CATALOG_NAMESPACE) {
      char *name = get_rel_name(rte->relid);
      ereport(ERROR,
              (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
               errmsg("ecto_sync: a table's name no longer names the table it was taken from"),
               errdetail("A query of ecto_sync would read relation \"%s\" (oid %u), which is not "
                         "one of the tables it named: a schema or table was renamed meanwhile.",
                         name ? name : "?", rte->relid),
               errhint("Try again: names are taken again from the tables' oids.")));
    }
    return false;
  }
  return expression_tree_walker(node, walker, context);
}

/* The hook: after any hook installed before; only for SQL that ecto_sync
 * runs (other queries cost nothing more). */
void check_named_tables(ParseState *pstate, Query *query, JumbleState *jstate) {
  if (prev_post_parse_analyze) prev_post_parse_analyze(pstate, query, jstate);
  if (!running_generated_sql() || query->commandType == CMD_UTILITY || !pstate->p_sourcetext ||
      !strstr(pstate->p_sourcetext, "/*ectosync:"))
    return;
  const char *text = pstate->p_sourcetext;
  Marked marked{nullptr, 0};
  pg_entry([&] {
    std::vector<uint32_t> relids = table_markers(text);
    marked.relids =
        static_cast<Oid *>(pg_call([&] { return palloc0(sizeof(Oid) * (relids.size() + 1)); }));
    for (uint32_t relid : relids) marked.relids[marked.n++] = relid;
  });
  check_relations(reinterpret_cast<Node *>(query), &marked);
  pfree(marked.relids);
}

}  // namespace

std::string named_table(uint32_t relid, const std::string &qualified, bool only_rows) {
  return std::string(only_rows ? "ONLY " : "") + table_marker(relid) + " " + qualified;
}

void table_names_init() {
  prev_post_parse_analyze = post_parse_analyze_hook;
  post_parse_analyze_hook = check_named_tables;
}

}  // namespace ectosync
