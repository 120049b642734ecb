/*
 * load.cpp: ectosync.load() and load_rows_where(): one SQL query per value,
 * generated from a Plan, run as the calling role.
 *
 * The query nests each association as a correlated subquery (shown
 * without the qualification that every function, operator, type and
 * collation gets: sql_context.hpp):
 *
 *   to_jsonb(t0.*) || jsonb_build_object('tags', (SELECT coalesce(jsonb_agg(
 *       to_jsonb(t1.*) ORDER BY t1.id), '[]') FROM tags t1
 *       WHERE EXISTS (SELECT FROM posts_tags j1
 *                     WHERE j1.post_id = t0.id AND j1.tag_id = t1.id)))
 *
 * has_many/many_to_many give arrays ordered by the target's primary key
 * (plan.hpp's KeyKind order: text-kind columns bytewise), belongs_to/has_one
 * an object or null.  Identifiers are quoted; values are parameters.
 */
#include "value/catalog.hpp"
#include "value/seal.hpp"
#include "value/catalog_internal.hpp"
#include "value/keys.hpp"
#include "capture/watch.hpp"
#include "capture/xact_buffer.hpp"
#include "settings.hpp"
#include "shmem/shmem.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

#include <cinttypes>
#include <cstdio>

namespace ectosync {

namespace {

/* ==== SQL generation ==== */

/* alias."column", for generated SQL. */
std::string column_ref(const std::string &alias, const Column &col) {
  return alias + "." + quote_ident(col.name);
}

/*
 * A column as it orders and compares in a value (plan.hpp's KeyKind): text
 * kinds bytewise; char(n) by its blank-padded output, as to_jsonb renders
 * it (a cast to text would strip the trailing blanks, and 'a\x01' would
 * sort after 'a'); numbers, booleans and times by their values.
 */
std::string key_expr(const std::string &alias, const Column &col) {
  const char *collate = " COLLATE pg_catalog.\"C\"";
  if (col.kind == KeyKind::Char)
    return "pg_catalog.textin(pg_catalog.bpcharout(" + column_ref(alias, col) + "))" + collate;
  if (col.kind == KeyKind::Text) return column_ref(alias, col) + "::pg_catalog.text" + collate;
  return column_ref(alias, col);
}

/* ORDER BY list of a list of node's rows: its query's order, then the primary key. */
std::string order_by(const PlanNode &node, const std::string &alias) {
  std::string out;
  for (const OrderKey &k : node.query.order)
    out += key_expr(alias, k.column) + (k.desc ? " DESC" : " ASC") +
           (k.nulls_first ? " NULLS FIRST, " : " NULLS LAST, ");
  for (const auto &col : node.table.pk) {
    if (&col != &node.table.pk.front()) out += ", ";
    out += key_expr(alias, col);
  }
  return out;
}

/* The quoted string literal of a text. */
std::string literal(const std::string &text) {
  const char *t = text.c_str();
  return pg_call([&] { return quote_literal_cstr(t); });
}

std::string all_of(const std::string &alias, const std::vector<Condition> &conditions);

/* One condition of a query's where, comparing as key_expr() does. */
std::string condition(const std::string &alias, const Condition &c) {
  if (c.op == CmpOp::Or) {
    std::string out;
    for (const auto &where : c.any) out += (out.empty() ? "(" : " OR ") + all_of(alias, where);
    return out + ")";
  }
  if (c.op == CmpOp::IsNull) return column_ref(alias, c.column) + " IS NULL";
  if (c.op == CmpOp::NotNull) return column_ref(alias, c.column) + " IS NOT NULL";
  bool text = c.column.kind == KeyKind::Text || c.column.kind == KeyKind::Char;
  auto compare = [&](const char *op, const std::string &value) {
    return key_expr(alias, c.column) + " OPERATOR(pg_catalog." + op + ") " + literal(value) +
           "::" + (text ? std::string("pg_catalog.text") : c.column.sql_type);
  };
  if (c.op != CmpOp::In) return compare(cmp_op_name(c.op), c.values.at(0));
  std::string out;
  for (const std::string &v : c.values) out += (out.empty() ? "(" : " OR ") + compare("=", v);
  return out.empty() ? "false" : out + ")";
}

/* Conditions AND-ed, in parentheses ("true" when none). */
std::string all_of(const std::string &alias, const std::vector<Condition> &conditions) {
  std::string out;
  for (const Condition &c : conditions) out += (out.empty() ? "(" : " AND ") + condition(alias, c);
  return out.empty() ? "true" : out + ")";
}

/* a.x = b.y AND ... over paired columns */
std::string join_condition(const std::string &a_alias, const std::vector<Column> &a,
                           const std::string &b_alias, const std::vector<Column> &b) {
  std::string out;
  for (size_t i = 0; i < a.size(); ++i) {
    if (i) out += " AND ";
    out += column_ref(a_alias, a[i]) + " " + a[i].eq_op + " " + column_ref(b_alias, b[i]);
  }
  return out;
}

/* Which rows of a list a query of its own gives (QueryBuilder::array). */
struct Window {
  enum Kind { Whole, Unlimited, Next } kind = Whole;
  int64_t next = 0; /* Next: the first `next` rows */
};

/*
 * Generates the SQL of a value from plan nodes; aliases t<n> (tables) and
 * j<n> (join tables) are numbered so that nested subqueries never clash.
 */
class QueryBuilder {
 public:
  /* A row of node's table (alias) with its associations, as a jsonb expression. */
  std::string row(const PlanNode &node, const std::string &alias) {
    std::string out = "pg_catalog.to_jsonb(" + alias + ".*)";
    for (const auto &assoc : node.assocs)
      out += " OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(" + literal(assoc.name) +
             ", " + association(assoc, alias) + ")";
    return out;
  }

  /*
   * jsonb_agg of the rows of node's table (alias) that `where` and node's
   * query select, in the query's order; window says which of them: the
   * query's limit and offset (Whole), all (Unlimited: rows looked up by
   * key), or the first few (Next).
   */
  std::string array(const PlanNode &node, const std::string &alias, const std::string &where,
                    Window window = {}) {
    std::string order = order_by(node, alias);
    std::string from = quoted_table(node.table) + " " + alias + " WHERE " + where;
    if (!node.query.where.empty()) from += " AND " + all_of(alias, node.query.where);
    std::string limit;
    if (window.kind == Window::Next) limit = " LIMIT " + std::to_string(window.next);
    if (window.kind == Window::Whole && node.query.limit)
      limit = " LIMIT " + std::to_string(*node.query.limit);
    if (window.kind == Window::Whole && node.query.offset > 0)
      limit += " OFFSET " + std::to_string(node.query.offset);
    /* A window is cut before the rows are nested: only its rows are read. */
    if (!limit.empty())
      from = "(SELECT " + alias + ".* FROM " + from + " ORDER BY " + order + limit + ") " + alias;
    return "(SELECT coalesce(pg_catalog.jsonb_agg(" + row(node, alias) + " ORDER BY " + order +
           "), '[]'::pg_catalog.jsonb) FROM " + from + ")";
  }

 private:
  std::string next_alias(const char *prefix) { return prefix + std::to_string(++aliases_); }

  /* The subquery of one association of the row aliased owner. */
  std::string association(const Assoc &assoc, const std::string &owner) {
    const PlanNode &target = *assoc.target;
    std::string t = next_alias("t");
    if (assoc.kind == AssocKind::ManyToMany) {
      std::string j = next_alias("j");
      /* EXISTS, not IN: IN would find its = through search_path. */
      std::string where = "EXISTS (SELECT FROM " + quoted_table(*assoc.join) + " " + j + " WHERE " +
                          join_condition(j, assoc.join_owner_cols, owner, assoc.owner_cols) +
                          " AND " +
                          join_condition(j, assoc.join_target_cols, t, assoc.target_cols) + ")";
      return array(target, t, where);
    }
    std::string where = join_condition(t, assoc.target_cols, owner, assoc.owner_cols);
    if (assoc.kind == AssocKind::HasMany) return array(target, t, where);
    return "(SELECT " + row(target, t) + " FROM " + quoted_table(target.table) + " " + t +
           " WHERE " + where + " ORDER BY " + order_by(target, t) + " LIMIT 1)";
  }

  int aliases_ = 0;
};

/* ==== running it ==== */

/* Runs a query returning one jsonb (saved: through a kept plan); the value
 * is copied out of SPI. */
Jsonb *spi_jsonb(const std::string &sql, const std::vector<SpiParam> &params, bool saved) {
  int rc = saved ? spi_execute_saved(sql, params, false) : spi_execute(sql, params, false);
  if (rc != SPI_OK_SELECT || SPI_processed != 1)
    throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: load query failed", sql);
  return pg_call([&] {
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull) return static_cast<Jsonb *>(nullptr);
    /* Detoasted where the copy lives, not in SPI's context, which
     * SPI_finish frees. */
    Datum copy = SPI_datumTransfer(d, false, -1);
    MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(DatumGetPointer(copy)));
    Jsonb *jsonb = DatumGetJsonbP(copy);
    MemoryContextSwitchTo(old);
    return jsonb;
  });
}

/*
 * WHERE clause of cols = $first.. (IS NULL for nullopt); adds the params,
 * read as each column's key_sql_type: a parent's 'abcdef' must not find
 * the children of 'abc' through a varchar(3) foreign key.
 */
std::string where_equal(const std::string &alias, const std::vector<Column> &cols,
                        const std::vector<std::optional<std::string>> &values,
                        std::vector<SpiParam> &params) {
  std::string out;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i) out += " AND ";
    if (!values.at(i)) {
      out += column_ref(alias, cols[i]) + " IS NULL";
      continue;
    }
    /* (a number in its canonical form: a value may write a key 5.0, as
     * its seal, which normalizes numbers, allows; as int4 input that
     * would fail, and fail only on the reads that hidden rows decide) */
    params.push_back({TEXTOID, cols[i].kind == KeyKind::Number
                                   ? std::string(canonical_key_text(KeyKind::Number, *values[i]))
                                   : *values[i]});
    if (cols[i].eq_op.empty())
      throw Error(ERRCODE_UNDEFINED_FUNCTION,
                  "column \"" + cols[i].name + "\" of type " + cols[i].type_name +
                      " cannot be compared for equality",
                  "Its type has no default equality operator.");
    out += column_ref(alias, cols[i]) + " " + cols[i].eq_op + " CAST($" +
           std::to_string(params.size()) + " AS " + cols[i].key_sql_type + ")";
  }
  return out.empty() ? "true" : out;
}

/* A filter entry: a root column and the value (nullopt: JSON null). */
struct FilterEntry {
  Column column;
  std::optional<std::string> text; /* the value as the column's input text */
  std::string normalized = "null"; /* to_jsonb rendering, as JSON text */
};

/* Parses and checks the filter: an object of root columns. */
std::vector<FilterEntry> parse_filter(const TableInfo &table, const Jsonb *filter) {
  std::vector<FilterEntry> out;
  if (!filter) return out;
  Json json;
  try {
    json = parse_json(jsonb_text(filter));
  } catch (const JsonError &e) {
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, std::string("invalid filter: ") + e.what(),
                "At character " + std::to_string(e.character) + ".",
                "A filter maps columns of the root table to the values they must equal.");
  }
  if (json.type != Json::Type::Object)
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "filter must be a JSON object",
                "It maps columns of the root table to the values they must equal.",
                "Example: {\"author_id\": 3}");
  auto catalog = make_catalog_source();
  const TableDesc &desc = catalog->table(table.relid);
  for (const auto &[name, value] : json.members) {
    const ColumnDesc *col = desc.column(name);
    if (!col)
      throw Error(ERRCODE_UNDEFINED_COLUMN, "filter column \"" + name + "\" of table " +
                                                desc.schema + "." + desc.name + " does not exist");
    if (!col->equal_as_rendered && value.type != Json::Type::Null) /* (IS NULL is exact) */
      throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "cannot filter by column \"" + name + "\" of table " + desc.schema + "." +
                      desc.name + ": values of type " + col->type_name +
                      " may be equal though they are written differently",
                  "Patches compare a filter's column as to_jsonb writes it, and a load by its "
                  "type's equality: they could disagree.",
                  "Filter by a column of a number, text, uuid, boolean, date, time stamp, enum "
                  "or bytea type (text of a deterministic collation).");
    if (!col->null_as_rendered && value.type == Json::Type::Null)
      throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "cannot filter by column \"" + name + "\" of table " + desc.schema + "." +
                      desc.name + " being null: a value of type " + col->type_name +
                      " may render as null without being NULL, or be NULL without rendering "
                      "as null",
                  "A load filters by IS NULL, and patches by the value to_jsonb renders: they "
                  "could disagree (jsonb 'null', a composite of NULLs).",
                  "Filter by a column of a scalar type.");
    /* (bpchar's equality ignores trailing blanks; its values render with
     * them, and patches compare them so: char(n) pads every value alike) */
    if (col->bare_bpchar && value.type != Json::Type::Null)
      throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "cannot filter by column \"" + name + "\" of table " + desc.schema + "." +
                      desc.name + ": it has type bpchar without a length",
                  "A load compares bpchar ignoring trailing blanks, and patches compare its "
                  "values as they render, with them: they could disagree.",
                  "Filter by a char(n), varchar or text column.");
    FilterEntry entry;
    entry.column = plan_column(*col);
    /* (a filter's value is read as the column's own type, typmod and all,
     * as its normalized form is rendered: char(n)'s padding is how patches
     * compare it) */
    entry.column.key_sql_type = entry.column.sql_type;
    if (value.type != Json::Type::Null) {
      refuse_moving_time(desc.schema + "." + desc.name, *col, value, "filter value");
      entry.text = json_input_text(value);
      entry.normalized =
          render_as_column(desc.schema + "." + desc.name, entry.column.name, entry.column.type_name,
                           entry.column.sql_type, value, "filter value");
    }
    out.push_back(std::move(entry));
  }
  return out;
}

/* The filter object as jsonb text, values normalized; "null" when none. */
std::string filter_text(const std::vector<FilterEntry> &entries, bool given) {
  if (!given) return "null";
  std::string out = "{";
  for (size_t i = 0; i < entries.size(); ++i)
    out += (i ? ", " : "") + json_quote(entries[i].column.name) + ": " + entries[i].normalized;
  return out + "}";
}

/*
 * The plan's tables as values carry them, a JSON array of oids: its assocs
 * name tables by name, and a migration may give a name to another table
 * (sync() checks them: sync.cpp).
 */
std::string tables_text(const Plan &plan) {
  std::string text = "[";
  for (uint32_t t : plan.tables()) text += (text.size() > 1 ? ", " : "") + std::to_string(t);
  return text + "]";
}

/* The epoch as values carry it: 16 lower-case hex digits. */
std::string hex16(uint64_t value) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016" PRIx64, value);
  return buf;
}

}  // namespace

/*
 * load(), sync() and changes() need a fresh snapshot per statement (see
 * DESIGN.md, "Value seq"): a value records the last event it reflects, and
 * a row read under an older snapshot would stay in it for good.
 */
void refuse_transaction_snapshot(const char *what) {
  if (!IsolationUsesXactSnapshot()) return;
  throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
              std::string("ectosync.") + what +
                  "() cannot run in a REPEATABLE READ or SERIALIZABLE transaction",
              "A value records the last event it reflects; under a transaction snapshot that "
              "event cannot be known.",
              std::string("Call ") + what + "() in a READ COMMITTED transaction.");
}

/*
 * hold(), sync(), changes() and wait_changes() make a value that takes
 * events afterwards (the session's, or the client's).  A row they read in a
 * transaction that changed its table would carry the uncommitted change,
 * and no event would take it out again if the transaction rolled back.
 */
void refuse_own_changes(const Plan &plan, const char *what) {
  if (!xact_wrote()) return; /* (the common case: no plan walk) */
  for (uint32_t relid : plan.tables()) {
    /* (what its policies show could follow an uncommitted membership) */
    if (xact_changed_roles() && row_security_enabled(relid))
      throw Error(
          ERRCODE_FEATURE_NOT_SUPPORTED,
          std::string("ectosync.") + what + "() cannot run in a transaction that changed roles",
          "Row level security of " + relation_name(relid) +
              " could show rows by the uncommitted change, and they would stay in the "
              "value if the transaction rolled back.",
          std::string("Call ") + what +
              "() before the transaction changes roles, or after it commits.");
    if (!xact_changed(relid)) continue;
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                std::string("ectosync.") + what + "() cannot run in a transaction that changed " +
                    relation_name(relid),
                "A row it read could hold the uncommitted change, and stay in the value if the "
                "transaction rolled back.",
                std::string("Call ") + what +
                    "() before the transaction changes the value's tables, or after it commits.");
  }
}

std::string normalized_filter(const TableInfo &root, const Jsonb *filter) {
  SpiScope spi;
  return filter_text(parse_filter(root, filter), filter != nullptr);
}

/* The whole value of load() (see plan.hpp), for a client: sealed under row
 * level security, for sync() to take back (seal.hpp). */
Jsonb *load_value(uint32_t relid, const Jsonb *assocs, const Jsonb *filter) {
  refuse_transaction_snapshot("load");
  const Plan &plan = resolve_plan(relid, assocs);
  /* (before the load: its SPI may take invalidations, and plan with them) */
  bool sealed = row_security(plan);
  Jsonb *value =
      load_value(plan, filter, settings.load_unwatched ? Capture::Optional : Capture::Required);
  return sealed ? with_seal(value) : value;
}

Jsonb *load_value(const Plan &plan, const Jsonb *filter, Capture capture) {
  refuse_transaction_snapshot("load");
  uint32_t relid = plan.root->table.relid;
  check_select_privileges(plan);
  const TableInfo &root = plan.root->table;
  /* The seq before the capture is checked: a watch that goes after the
   * check has its marker after this seq (captured.cpp). */
  uint64_t seq = last_seq();
  SpiScope spi;
  std::vector<FilterEntry> entries = parse_filter(root, filter);
  /* A value that cannot follow its tables says so, and sync() refuses it
   * (sync.cpp): one that no watch captures (load_unwatched), and one read
   * in a transaction that changed its tables (hold() refuses that), which
   * a rollback would leave with changes that no event takes out again. */
  bool unwatched = false, uncommitted = false;
  try {
    check_captured(plan);
  } catch (const Error &e) {
    if (capture == Capture::Required || e.sqlstate != ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
      throw;
    unwatched = true;
  }
  try {
    refuse_own_changes(plan, "load");
  } catch (const Error &e) {
    if (e.sqlstate != ERRCODE_FEATURE_NOT_SUPPORTED) throw;
    uncommitted = true;
  }
  std::vector<SpiParam> params = {{TEXTOID, root.display()},
                                  {TEXTOID, std::to_string(relid)},
                                  {TEXTOID, plan.spec},
                                  {TEXTOID, filter_text(entries, filter != nullptr)},
                                  {TEXTOID, hex16(database_epoch())},
                                  {TEXTOID, std::to_string(seq)},
                                  {TEXTOID, tables_text(plan)}};
  std::vector<Column> cols;
  std::vector<std::optional<std::string>> values;
  for (const auto &e : entries) {
    cols.push_back(e.column);
    values.push_back(e.text);
  }
  QueryBuilder q;
  std::string rows = q.array(*plan.root, "t0", where_equal("t0", cols, values, params));
  std::string marks = std::string(unwatched ? "'unwatched', true, " : "") +
                      (uncommitted ? "'uncommitted', true, " : "");
  std::string sql =
      "SELECT pg_catalog.jsonb_build_object('ectosync', 1, 'table', $1, 'relid',"
      " $2::pg_catalog.int8, 'assocs', $3::pg_catalog.jsonb, 'filter', $4::pg_catalog.jsonb,"
      " 'epoch', $5, 'seq', $6::pg_catalog.numeric, 'tables', $7::pg_catalog.jsonb, " +
      marks + "'rows', " + rows + ")";
  /* Planned for its filter values: a whole value is worth a custom plan. */
  return spi_jsonb(sql, params, false);
}

Jsonb *load_rows_where(const PlanNode &node, const std::vector<Column> &cols,
                       const std::vector<std::optional<std::string>> &values, bool window) {
  SpiScope spi;
  std::vector<SpiParam> params;
  QueryBuilder q;
  std::string sql = "SELECT " + q.array(node, "t0", where_equal("t0", cols, values, params),
                                        Window{window ? Window::Whole : Window::Unlimited});
  /* sync() repeats this query with other keys: planning it each time cost
   * more than running it. */
  return spi_jsonb(sql, params, true);
}

Jsonb *load_list(const PlanNode &node, const ListSource &source, const std::vector<Texts> *exclude,
                 int64_t next) {
  /* A parent whose owner columns hold a NULL has no list: load()'s join
   * compares with =, which never matches NULL (where_equal() would write
   * IS NULL, as a filter means it). */
  if (source.assoc && has_null(source.owner)) return jb::to_jsonb(jb::Node::array());
  SpiScope spi;
  std::vector<SpiParam> params;
  std::string where;
  if (!source.assoc) {
    std::vector<Column> cols;
    Texts values;
    for (const auto &e : parse_filter(node.table, source.filter)) {
      cols.push_back(e.column);
      values.push_back(e.text);
    }
    where = where_equal("t0", cols, values, params);
  } else if (source.assoc->kind == AssocKind::ManyToMany) {
    const Assoc &a = *source.assoc;
    where = "EXISTS (SELECT FROM " + quoted_table(*a.join) + " j0 WHERE " +
            where_equal("j0", a.join_owner_cols, source.owner, params) + " AND " +
            join_condition("j0", a.join_target_cols, "t0", a.target_cols) + ")";
  } else {
    where = where_equal("t0", source.assoc->target_cols, source.owner, params);
  }
  for (const Texts &pk : exclude ? *exclude : std::vector<Texts>{})
    where += " AND NOT (" + where_equal("t0", node.table.pk, pk, params) + ")";
  QueryBuilder q;
  std::string sql =
      "SELECT " + q.array(node, "t0", where, exclude ? Window{Window::Next, next} : Window{});
  return spi_jsonb(sql, params, false);
}

}  // namespace ectosync

using namespace ectosync;

/*
 * ectosync.load(tbl regclass, assocs jsonb DEFAULT '[]', filter jsonb
 * DEFAULT NULL) RETURNS jsonb: the value of tbl's rows (all, or those that
 * equal filter) with the associations of assocs.
 */
ECTOSYNC_FUNCTION(ectosync_load) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = jsonb_arg_or_null(fcinfo, 1);
  Jsonb *filter = jsonb_arg_or_null(fcinfo, 2);
  Jsonb *value = load_value(relid, assocs, filter);
  PG_RETURN_JSONB_P(value);
}

namespace ectosync {
namespace {

/* Elements of a text[] (NULL elements as nullopt). */
std::vector<std::optional<std::string>> text_array(ArrayType *array) {
  Datum *elems = nullptr;
  bool *nulls = nullptr;
  int n = 0;
  pg_call([&] { deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n); });
  std::vector<std::optional<std::string>> out;
  for (int i = 0; i < n; ++i) {
    if (nulls[i]) {
      out.emplace_back(std::nullopt);
      continue;
    }
    char *cstr = pg_call([&] { return TextDatumGetCString(elems[i]); });
    out.emplace_back(cstr);
  }
  return out;
}

/* load_rows_where() on the root of a plan, columns by name. */
Jsonb *rows_where(uint32_t relid, const Jsonb *assocs, ArrayType *columns, ArrayType *values) {
  const Plan &plan = resolve_plan(relid, assocs);
  auto names = text_array(columns);
  auto vals = text_array(values);
  if (names.size() != vals.size())
    throw Error(ERRCODE_ARRAY_SUBSCRIPT_ERROR, "columns and values differ in length");
  std::vector<Column> cols;
  {
    SpiScope spi;
    auto catalog = make_catalog_source();
    const TableDesc &desc = catalog->table(relid);
    for (const auto &name : names) {
      const ColumnDesc *col = name ? desc.column(*name) : nullptr;
      if (!col)
        throw Error(ERRCODE_UNDEFINED_COLUMN, "column \"" + name.value_or("NULL") + "\" of table " +
                                                  plan.root->table.display() + " does not exist");
      cols.push_back(plan_column(*col));
    }
  }
  return load_rows_where(*plan.root, cols, vals, true);
}

}  // namespace
}  // namespace ectosync

/*
 * ectosync._load_rows_where(tbl regclass, assocs jsonb, columns text[],
 * vals text[]) RETURNS jsonb: the rows load() would nest for tbl where the
 * columns equal the values (NULL: IS NULL), as an array.  What sync() uses
 * for rows entering a value; SQL-callable for tests and debugging.
 */
ECTOSYNC_FUNCTION(ectosync_load_rows_where) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3)) PG_RETURN_NULL();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = jsonb_arg_or_null(fcinfo, 1);
  ArrayType *columns = PG_GETARG_ARRAYTYPE_P(2);
  ArrayType *values = PG_GETARG_ARRAYTYPE_P(3);
  PG_RETURN_JSONB_P(rows_where(relid, assocs, columns, values));
}
