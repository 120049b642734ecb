/*
 * catalog.cpp: the catalog (pg_class, pg_attribute, pg_index,
 * pg_constraint) read through SPI (pg/spi.hpp) into assoc.hpp's
 * descriptions; resolve_plan() with a backend-local cache; privilege
 * checks.
 */
#include "value/catalog.hpp"

#include "core/assoc.hpp"
#include "value/catalog_internal.hpp"
#include "pg/table_names.hpp"
#include "shmem/shmem.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_operator.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/rls.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
}

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

namespace ectosync {

/* ==== quoting and errors ==== */

std::string quoted_table(const TableInfo &table) {
  return named_table(table.relid, quote_ident(table.schema) + "." + quote_ident(table.name),
                     !table.partitioned);
}

Error to_error(const AssocError &e) {
  const std::string &s = e.sqlstate;
  int code = s.size() == 5 ? MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]) : ERRCODE_INTERNAL_ERROR;
  return Error(code, e.message, e.detail, e.hint);
}

/* ==== the catalog through SPI ==== */

namespace {

/* "1 2 3" -> {1, 2, 3} */
std::vector<int16_t> parse_attnums(const std::optional<std::string> &text) {
  std::vector<int16_t> out;
  if (!text) return out;
  std::istringstream in(*text);
  int value;
  while (in >> value) out.push_back(static_cast<int16_t>(value));
  return out;
}

/* Key kinds by base type (see KeyKind); nullopt for the rest. */
std::optional<KeyKind> key_kind(Oid type) {
  Oid base = pg_call([&] { return getBaseType(type); });
  switch (base) {
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case NUMERICOID:
    case OIDOID:
      return KeyKind::Number;
    case TEXTOID:
    case VARCHAROID:
    case UUIDOID:
      return KeyKind::Text;
    case BPCHAROID:
      return KeyKind::Char;
    case BOOLOID:
      return KeyKind::Bool;
    case DATEOID:
      return KeyKind::Date;
    case TIMESTAMPOID:
      return KeyKind::Timestamp;
    case TIMESTAMPTZOID:
      return KeyKind::TimestampTz;
    default:
      return std::nullopt;
  }
}

/*
 * Whether values of type are equal exactly when to_jsonb renders them
 * alike: the key kinds, enums (labels), bytea, times of day, network
 * addresses, bit strings, and arrays of these.  Not interval ('1 day'
 * equals '24:00:00'), floats (0 equals -0), citext, jsonb and the like.
 */
static bool equal_as_rendered(Oid type) {
  if (key_kind(type)) return true;
  Oid base = pg_call([&] { return getBaseType(type); });
  switch (base) {
    case BYTEAOID:
    case NAMEOID:
    case CHAROID:
    case TIMEOID:
    case TIMETZOID:
    case INETOID:
    case CIDROID:
    case MACADDROID:
    case BITOID:
    case VARBITOID:
      return true;
    default:
      break;
  }
  /* (an array: of such elements; its bounds are not rendered, and
   * '[0:0]={1}' equals no '{1}': arrays with other bounds are rare) */
  Oid element = pg_call([&] { return get_element_type(base); });
  if (OidIsValid(element)) return equal_as_rendered(element);
  return pg_call([&] { return type_is_enum(base); });
}

/* Whether type (its base type, or an array's elements') is a date or a
 * time: "now" or "today" reads as another value at another time. */
static bool moving_time(Oid type) {
  Oid base = pg_call([&] { return getBaseType(type); });
  Oid element = pg_call([&] { return get_element_type(base); });
  if (OidIsValid(element)) return moving_time(element);
  return base == DATEOID || base == TIMEOID || base == TIMETZOID || base == TIMESTAMPOID ||
         base == TIMESTAMPTZOID;
}

/*
 * OPERATOR(schema.=) of a type's default equality (its btree opclass's),
 * for generated SQL; empty when the type has none.  Found through the type
 * cache, never through search_path.
 */
std::string equality_operator(Oid type) {
  char *op = pg_call([&]() -> char * {
    TypeCacheEntry *entry = lookup_type_cache(type, TYPECACHE_EQ_OPR);
    if (!OidIsValid(entry->eq_opr)) return nullptr;
    HeapTuple tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(entry->eq_opr));
    if (!HeapTupleIsValid(tuple)) return nullptr;
    Form_pg_operator form = (Form_pg_operator)GETSTRUCT(tuple);
    char *out =
        psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(form->oprnamespace)),
                 NameStr(form->oprname));
    ReleaseSysCache(tuple);
    return out;
  });
  return op ? op : "";
}

/*
 * A type as format_type(type, typmod) names it, but schema-qualified, for
 * generated SQL: "pg_catalog.text", "public.mood"; the SQL-standard names
 * that the grammar maps to pg_catalog stay as they are ("integer",
 * "character varying(10)").
 */
std::string qualified_type_name(Oid type, int32 typmod) {
  return pg_call([&] {
    return format_type_extended(type, typmod,
                                FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
  });
}

/*
 * What values compared with a column of type are read as
 * (ColumnDesc::value_sql_type): its base type without a typmod, and int8
 * for int2 and int4, so that a bigint parent's key past int4's range finds
 * no child rather than failing (int4 = int8 is of the integers' operator
 * family: an index on the column still serves).
 */
std::string value_type_name(Oid type) {
  Oid base = pg_call([&] { return getBaseType(type); });
  if (base == INT2OID || base == INT4OID) base = INT8OID;
  return qualified_type_name(base, -1);
}

const char *const kTableSql =
    "SELECT n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind,"
    " c.relispartition FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
    " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) $1"
    " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])";

const char *const kColumnsSql =
    "SELECT a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid,"
    " a.atttypmod, c.collisdeterministic FROM pg_catalog.pg_attribute a"
    " LEFT JOIN pg_catalog.pg_collation c ON c.oid OPERATOR(pg_catalog.=) a.attcollation"
    " WHERE a.attrelid OPERATOR(pg_catalog.=) $1"
    " AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped ORDER BY a.attnum";

/*
 * Unique, valid, non-partial, non-expression indexes: key columns in
 * order, whether it is the primary key, and whether it can stand for one
 * (immediate, every column NOT NULL), in the order a table's key is chosen
 * (worker.cpp's row_key_attnums() chooses the same): the primary key; else
 * the REPLICA IDENTITY index; else the unique NOT NULL index with the
 * fewest columns, the oldest (lowest oid) first.
 */
const char *const kIndexesSql =
    "SELECT i.indisprimary,"
    "   (SELECT pg_catalog.string_agg(i.indkey[k]::pg_catalog.text, ' ' ORDER BY k)"
    "   FROM pg_catalog.generate_series(0, i.indnkeyatts OPERATOR(pg_catalog.-) 1) k),"
    " i.indimmediate AND NOT EXISTS (SELECT FROM pg_catalog.generate_series(0,"
    "   i.indnkeyatts OPERATOR(pg_catalog.-) 1) k"
    "   JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid"
    "    AND a.attnum OPERATOR(pg_catalog.=) i.indkey[k] WHERE NOT a.attnotnull) AS can_key"
    " FROM pg_catalog.pg_index i"
    " WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique AND i.indisvalid"
    "   AND i.indpred IS NULL AND i.indexprs IS NULL"
    " ORDER BY i.indisprimary DESC, i.indisreplident DESC, i.indnkeyatts, i.indexrelid";

/* Foreign keys (not the clones that partitions inherit). */
const char *const kForeignKeysSql =
    "SELECT conname, conrelid, pg_catalog.array_to_string(conkey, ' '),"
    "       confrelid, pg_catalog.array_to_string(confkey, ' ')"
    " FROM pg_catalog.pg_constraint"
    " WHERE contype OPERATOR(pg_catalog.=) 'f' AND conparentid OPERATOR(pg_catalog.=) 0"
    " AND %s OPERATOR(pg_catalog.=) $1 ORDER BY conname, oid";

/* The one parameter of the catalog queries: a relation oid. */
std::vector<SpiParam> oid_param(uint32_t relid) {
  return {{OIDOID, std::to_string(relid)}};
}

const char *const kWrongObjectType = "42809";

/* The name jsonb_typeof() gives a JSON type. */
const char *json_type_name(Json::Type type) {
  switch (type) {
    case Json::Type::Null:
      return "null";
    case Json::Type::Bool:
      return "boolean";
    case Json::Type::Number:
      return "number";
    case Json::Type::String:
      return "string";
    case Json::Type::Array:
      return "array";
    case Json::Type::Object:
      return "object";
  }
  return "?";
}

class SpiCatalog : public CatalogSource {
 public:
  explicit SpiCatalog(bool render_values) : render_values_(render_values) {}

  const TableDesc &table(uint32_t relid) override {
    auto it = tables_.find(relid);
    if (it != tables_.end()) return it->second;
    return tables_[relid] = read_table(relid);
  }

  /* A table the caller named, found as to_regclass() finds it for the caller. */
  std::optional<uint32_t> find_table(const std::string &name) override {
    const char *text = name.c_str();
    Oid relid = with_caller_search_path([&] {
      return RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(text)), NoLock,
                              true);
    });
    if (!OidIsValid(relid) || !table_exists(relid)) return std::nullopt; /* a view, ... */
    return relid;
  }

  std::vector<ForeignKey> foreign_keys_from(uint32_t relid) override {
    auto it = fks_from_.find(relid);
    if (it != fks_from_.end()) return it->second;
    return fks_from_[relid] = read_fks("conrelid", relid);
  }
  std::vector<ForeignKey> foreign_keys_to(uint32_t relid) override {
    auto it = fks_to_.find(relid);
    if (it != fks_to_.end()) return it->second;
    return fks_to_[relid] = read_fks("confrelid", relid);
  }

  std::string render_value(const TableDesc &table, const ColumnDesc &column,
                           const Json &value) override {
    if (!render_values_) return CatalogSource::render_value(table, column, value);
    refuse_moving_time(table.schema + "." + table.name, column, value, "$query value");
    return render_as_column(table.schema + "." + table.name, column.name, column.type_name,
                            column.sql_type, value, "$query value");
  }

 private:
  bool render_values_;
  bool table_exists(uint32_t relid) {
    return !spi_rows(kTableSql, oid_param(relid), false).empty();
  }

  TableDesc read_table(uint32_t relid) {
    auto rows = spi_rows(kTableSql, oid_param(relid), false);
    if (rows.empty())
      throw AssocError(kWrongObjectType, "\"" + relation_name(relid) + "\" is not a table", {},
                       "ecto_sync works on ordinary and partitioned tables.");
    TableDesc t;
    t.relid = relid;
    t.schema = *rows[0][0];
    t.name = *rows[0][1];
    t.sql_name = *rows[0][2];
    t.partitioned = *rows[0][3] == "p";
    t.partition = *rows[0][4] == "t";
    for (const auto &row : spi_rows(kColumnsSql, oid_param(relid), false)) {
      Oid type = static_cast<Oid>(std::stoul(*row[3]));
      int32 typmod = std::stoi(*row[4]);
      t.columns.push_back(ColumnDesc{*row[1], static_cast<int16_t>(std::stoi(*row[0])), *row[2],
                                     key_kind(type), equality_operator(type),
                                     qualified_type_name(type, typmod), value_type_name(type)});
      t.columns.back().equal_as_rendered = equal_as_rendered(type) && row[5] != "f";
      t.columns.back().moving_time = moving_time(type);
      t.columns.back().null_as_rendered = pg_call([&] {
        Oid base = getBaseType(type);
        return base != JSONOID && base != JSONBOID && !type_is_rowtype(base);
      });
      t.columns.back().bare_bpchar = pg_call([&] {
        int32 base_typmod = typmod;
        return getBaseTypeAndTypmod(type, &base_typmod) == BPCHAROID && base_typmod < 0;
      });
    }
    /* The first index that can be a key is (kIndexesSql's order). */
    for (const auto &row : spi_rows(kIndexesSql, oid_param(relid), false)) {
      std::vector<int16_t> cols = parse_attnums(row[1]);
      /* (a deferrable one neither: two rows may have one key until the
       * commit, and the worker takes the last event of a key for its
       * state) */
      if (t.pk.empty() && *row[2] == "t") t.pk = cols;
      t.uniques.push_back(cols);
    }
    return t;
  }

  std::vector<ForeignKey> read_fks(const char *column, uint32_t relid) {
    char sql[512];
    snprintf(sql, sizeof sql, kForeignKeysSql, column);
    std::vector<ForeignKey> out;
    for (const auto &row : spi_rows(sql, oid_param(relid), false))
      out.push_back(ForeignKey{*row[0], static_cast<uint32_t>(std::stoul(*row[1])),
                               parse_attnums(row[2]), static_cast<uint32_t>(std::stoul(*row[3])),
                               parse_attnums(row[4])});
    return out;
  }

  std::map<uint32_t, TableDesc> tables_;
  std::map<uint32_t, std::vector<ForeignKey>> fks_from_, fks_to_;
};

}  // namespace

std::string json_input_text(const Json &value) {
  if (value.type == Json::Type::String) return value.text;
  return jsonb_style_text(value);
}

std::string jsonb_style_text(const Json &value) {
  std::string out;
  switch (value.type) {
    case Json::Type::Array:
      for (const Json &item : value.items)
        out += (out.empty() ? "[" : ", ") + jsonb_style_text(item);
      return out.empty() ? "[]" : out + "]";
    case Json::Type::Object:
      for (const auto &[key, item] : value.members)
        out += (out.empty() ? "{" : ", ") + json_quote(key) + ": " + jsonb_style_text(item);
      return out.empty() ? "{}" : out + "}";
    default:
      return json_dump(value);
  }
}

void refuse_moving_time(const std::string &table, const ColumnDesc &col, const Json &value,
                        const std::string &what) {
  if (!col.moving_time || value.type != Json::Type::String) return;
  std::string lower(value.text.size(), ' ');
  std::transform(value.text.begin(), value.text.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (const char *word : {"now", "today", "tomorrow", "yesterday"})
    if (lower.find(word) != std::string::npos)
      throw Error(
          ERRCODE_INVALID_PARAMETER_VALUE,
          "invalid " + what + " for \"" + col.name + "\" of table " + table,
          "\"" + value.text + "\" names a time that moves on; a value is read once and kept.",
          "Give the date or time itself.");
}

std::string render_as_column(const std::string &table, const std::string &column,
                             const std::string &type_name, const std::string &sql_type,
                             const Json &value, const std::string &what) {
  std::string text = json_input_text(value);
  std::string cast = "pg_catalog.to_jsonb(CAST($1 AS " + sql_type + "))";
  std::string hint = "The value must be what to_jsonb() renders for type " + type_name + ".";
  std::string message = "invalid " + what + " for \"" + column + "\" of table " + table;
  std::vector<SpiRow> rows;
  try {
    /* (a subtransaction: the caller may go on after a value that fails) */
    rows = in_subtransaction([&] {
      return spi_rows("SELECT " + cast + "::pg_catalog.text, pg_catalog.jsonb_typeof(" + cast + ")",
                      {{TEXTOID, text}}, false);
    });
  } catch (const Error &e) {
    throw Error(e.sqlstate, message, e.message, hint);
  }
  if (*rows.at(0)[1] != json_type_name(value.type))
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, message,
                std::string("A ") + json_type_name(value.type) + " was given; a " + type_name +
                    " column renders as a " + *rows[0][1] + ".",
                hint);
  return *rows[0][0];
}

std::unique_ptr<CatalogSource> make_catalog_source(bool render_values) {
  return std::make_unique<SpiCatalog>(render_values);
}

/* ==== resolve_plan and its cache ==== */

namespace {

/*
 * Plans by (root, search_path, spec text as given).  A relcache invalidation
 * of any table a plan read (or of all tables) makes the cache stale: plans
 * already handed out stay alive until the end of the transaction, because
 * callers hold references while running queries that may process
 * invalidations.
 */
struct PlanCache {
  std::map<std::string, std::shared_ptr<const Plan>> plans;
  std::set<uint32_t> relids; /* every table the cached plans depend on */
  std::vector<std::shared_ptr<const Plan>> retired;
  bool stale = false;
  std::unordered_map<uint32_t, TimestampTz> noted; /* note_use() per table */
};

PlanCache plan_cache;
constexpr size_t kMaxCachedPlans = 256;

/* Relcache callback: never throws, frees nothing. */
void on_relcache_invalidation(Datum, Oid relid) {
  if (relid == InvalidOid || plan_cache.relids.count(relid)) plan_cache.stale = true;
}

/* Schema callback: a renamed schema sends no relcache invalidation of its
 * tables, whose names the plans hold (pg/table_names.cpp). */
void on_schema_invalidation(Datum, int, uint32) {
  plan_cache.stale = true;
}

/* Transaction end: plans retired by invalidations can go now. */
void on_xact_end(XactEvent event, void *) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
      event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
    plan_cache.retired.clear();
}

/* Moves the plans of a stale cache aside (alive until transaction end). */
void retire_stale_plans() {
  if (!plan_cache.stale) return;
  for (auto &entry : plan_cache.plans) plan_cache.retired.push_back(entry.second);
  plan_cache.plans.clear();
  plan_cache.relids.clear();
  plan_cache.stale = false;
}

/* Every table whose catalog rows a plan of relid depends on. */
void remember_relids(const Plan &plan) {
  for (uint32_t relid : plan.tables()) plan_cache.relids.insert(relid);
}

/*
 * Tells the worker that this backend uses the plan's tables (shmem.hpp's
 * note_use), at most once a second per table: a plan is resolved at every
 * load, sync and changes call.
 */
void note_plan_use(const Plan &plan) {
  TimestampTz now = GetCurrentTimestamp();
  std::vector<uint32_t> due;
  for (uint32_t relid : plan.tables()) {
    TimestampTz &last = plan_cache.noted[relid];
    if (now - last < USECS_PER_SEC) continue;
    last = now;
    due.push_back(relid);
  }
  if (!due.empty()) pg_call([&] { note_use(due); });
}

}  // namespace

/*
 * The SPI connection closes before a resolution error is thrown: callers
 * (watch refreshes) may catch it and go on.
 */
Plan resolve_plan_text(uint32_t relid, const std::string &spec_text, bool render_values) {
  std::optional<Error> failure;
  {
    SpiScope spi;
    auto catalog = make_catalog_source(render_values);
    try {
      return resolve(*catalog, relid, parse_spec(spec_text));
    } catch (const AssocError &e) {
      failure = to_error(e);
    } catch (const Error &e) {
      failure = e;
    }
  }
  throw *failure;
}

/*
 * The cache's key of a spec: (root, search_path, the spec's jsonb bytes).
 * jsonb's binary form is one per value (keys sorted, duplicates gone), and
 * reading it costs nothing, where rendering it as text was most of a held
 * value's changes() call that found nothing to do.
 */
static std::string plan_key(uint32_t relid, const std::string &path, const Jsonb *spec) {
  std::string key = std::to_string(relid) + '\n' + path + '\n';
  if (spec) key.append(reinterpret_cast<const char *>(spec), VARSIZE(spec));
  return key;
}

const Plan &resolve_plan(uint32_t relid, const Jsonb *assocs) {
  retire_stale_plans();
  /* Names in a spec are the caller's: its search_path finds them. */
  std::string path = caller_search_path();
  std::string key = plan_key(relid, path, assocs);
  auto it = plan_cache.plans.find(key);
  if (it != plan_cache.plans.end()) {
    note_plan_use(*it->second);
    return *it->second;
  }
  std::string spec = assocs ? jsonb_text(assocs) : "[]";
  auto plan = std::make_shared<const Plan>(resolve_plan_text(relid, spec));
  if (plan_cache.plans.size() >= kMaxCachedPlans) {
    plan_cache.stale = true;
    retire_stale_plans();
  }
  /* New foreign keys referencing a plan table invalidate that table too. */
  remember_relids(*plan);
  /* Values carry the normalized spec ("assocs"), and sync() and changes()
   * resolve that: the same plan, found without resolving it again. */
  const char *spec_text = plan->spec.c_str();
  Jsonb *normalized = pg_call(
      [&] { return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(spec_text))); });
  plan_cache.plans[plan_key(relid, path, normalized)] = plan;
  note_plan_use(*plan);
  return *(plan_cache.plans[key] = plan);
}

void check_select_privileges(const Plan &plan) {
  Oid role = pg_call([] { return GetUserId(); });
  for (uint32_t relid : plan.tables()) {
    /* USAGE on its schema too, as a query that names it needs: a shared
     * value or a cached row is served without one. */
    Oid nsp = pg_call([&] { return get_rel_namespace(relid); });
    if (pg_call([&] { return pg_namespace_aclcheck(nsp, role, ACL_USAGE) != ACLCHECK_OK; })) {
      char *name = pg_call([&] { return get_namespace_name(nsp); });
      throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                  std::string("permission denied for schema ") + (name ? name : "?"),
                  "A value of this shape reads every table it involves.",
                  "Grant USAGE on the schema to the role.");
    }
    bool ok = pg_call([&] {
      return pg_class_aclcheck(relid, role, ACL_SELECT) == ACLCHECK_OK ||
             pg_attribute_aclcheck_all(relid, role, ACL_SELECT, ACLMASK_ALL) == ACLCHECK_OK;
    });
    if (ok) continue;
    char *name = pg_call([&] { return get_rel_name(relid); });
    throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                std::string("permission denied for table ") + (name ? name : "?"),
                "A value of this shape reads every column of every table it involves.",
                "Grant SELECT on the table to the role.");
  }
}

/* From _PG_init: the plan cache hears of relcache and schema
 * invalidations and of transaction ends. */
void catalog_init() {
  CacheRegisterRelcacheCallback(on_relcache_invalidation, 0);
  CacheRegisterSyscacheCallback(NAMESPACEOID, on_schema_invalidation, 0);
  RegisterXactCallback(on_xact_end, nullptr);
}

bool bypasses_row_security() {
  return pg_call([] { return superuser() || has_bypassrls_privilege(GetUserId()); });
}

bool row_security(const Plan &plan) {
  for (uint32_t relid : plan.tables())
    if (pg_call([&] { return check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED; }))
      return true;
  return false;
}

bool row_security_enabled(uint32_t relid) {
  return pg_call([&] {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tuple)) return false;
    bool enabled = ((Form_pg_class)GETSTRUCT(tuple))->relrowsecurity;
    ReleaseSysCache(tuple);
    return enabled;
  });
}

}  // namespace ectosync
