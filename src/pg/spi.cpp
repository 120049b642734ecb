/*
 * spi.cpp: SPI from C++ (spi.hpp): sessions, queries with parameters, saved
 * plans, rows as text; identifier quoting and names for messages.
 */
#include "pg/spi.hpp"

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
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
}

#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

namespace ectosync {

SpiScope::SpiScope() {
  pg_call([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "ecto_sync: SPI_connect failed");
  });
}

SpiScope::~SpiScope() {
  /* A PostgreSQL error leaves SPI to the transaction's abort; an error of
   * ecto_sync's own leaves the transaction sound, and the caller may go on
   * (wait_changes() with one value failing). */
  if (std::uncaught_exceptions() == exceptions_ || !PgError::any_alive()) SPI_finish();
}

namespace {

/* SPI's form of query parameters: types, values (through the types' input
 * functions) and null flags, palloc'd in the current context. */
struct SpiArgs {
  int n = 0;
  Oid *types = nullptr;
  Datum *values = nullptr;
  char *nulls = nullptr;

  explicit SpiArgs(const std::vector<SpiParam> &params) : n(static_cast<int>(params.size())) {
    if (n == 0) return;
    pg_call([&] {
      types = static_cast<Oid *>(palloc(n * sizeof(Oid)));
      values = static_cast<Datum *>(palloc(n * sizeof(Datum)));
      nulls = static_cast<char *>(palloc(n));
    });
    for (int i = 0; i < n; ++i) {
      const SpiParam &p = params[i];
      types[i] = p.type;
      nulls[i] = p.value ? ' ' : 'n';
      values[i] = p.value ? pg_call([&] {
        Oid input;
        Oid ioparam;
        getTypeInputInfo(p.type, &input, &ioparam);
        return OidInputFunctionCall(input, const_cast<char *>(p.value->c_str()), ioparam, -1);
      })
                          : Datum(0);
    }
  }
};

}  // namespace

/* Executes sql with params as the current role; returns SPI's result code. */
int spi_execute(const std::string &sql, const std::vector<SpiParam> &params, bool read_only) {
  require_pinned(sql);
  SpiArgs args(params);
  const char *text = sql.c_str();
  int rc = pg_call([&] {
    return SPI_execute_with_args(text, args.n, args.types, args.values, args.nulls, read_only, 0);
  });
  require_settings_unchanged();
  return rc;
}

namespace {

/*
 * The backend's saved plans of spi_execute_saved(), by query text and
 * parameter types.  Bounded: past kMaxSavedPlans it starts over.
 */
constexpr size_t kMaxSavedPlans = 256;
std::unordered_map<std::string, SPIPlanPtr> saved_plans;

/* A saved (SPI_keepplan) generic plan of sql for args' types. */
SPIPlanPtr saved_plan(const std::string &sql, const SpiArgs &args) {
  std::string key = sql;
  key.append(reinterpret_cast<const char *>(args.types), args.n * sizeof(Oid));
  auto it = saved_plans.find(key);
  if (it != saved_plans.end()) return it->second;
  require_pinned(sql); /* the text, once per plan */
  if (saved_plans.size() >= kMaxSavedPlans) {
    for (auto &entry : saved_plans) pg_call([&] { SPI_freeplan(entry.second); });
    saved_plans.clear();
  }
  const char *text = sql.c_str();
  SPIPlanPtr plan = pg_call([&] {
    SPIPlanPtr p = SPI_prepare_cursor(text, args.n, args.types, CURSOR_OPT_GENERIC_PLAN);
    if (!p) elog(ERROR, "ecto_sync: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    SPI_keepplan(p);
    return p;
  });
  saved_plans.emplace(std::move(key), plan);
  return plan;
}

}  // namespace

/*
 * spi_execute() through a plan kept for the backend's life: for the small
 * keyed queries that sync() runs again and again with other key values,
 * where parsing and planning cost more than running.  The plan is generic
 * (its parameters are key values, looked up through an index or not at
 * all); PostgreSQL's plan cache revalidates it after DDL, a search_path
 * change, or under another role where row level security applies.
 */
int spi_execute_saved(const std::string &sql, const std::vector<SpiParam> &params, bool read_only) {
  require_pinned_settings(sql);
  SpiArgs args(params);
  SPIPlanPtr plan = saved_plan(sql, args);
  int rc = pg_call([&] { return SPI_execute_plan(plan, args.values, args.nulls, read_only, 0); });
  require_settings_unchanged();
  return rc;
}

std::vector<SpiRow> spi_rows(const std::string &sql, const std::vector<SpiParam> &params,
                             bool read_only) {
  int rc = spi_execute(sql, params, read_only);
  if (rc != SPI_OK_SELECT)
    throw Error(ERRCODE_INTERNAL_ERROR,
                "ecto_sync: query failed: " + std::string(SPI_result_code_string(rc)));
  std::vector<SpiRow> rows;
  SPITupleTable *table = SPI_tuptable;
  int natts = table->tupdesc->natts;
  for (uint64 r = 0; r < SPI_processed; ++r) {
    SpiRow row;
    for (int c = 1; c <= natts; ++c) {
      char *value = pg_call([&] { return SPI_getvalue(table->vals[r], table->tupdesc, c); });
      row.push_back(value ? std::optional<std::string>(value) : std::nullopt);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void spi_exec(const std::string &sql, const std::vector<SpiParam> &params) {
  int rc = spi_execute(sql, params, false);
  if (rc < 0)
    throw Error(ERRCODE_INTERNAL_ERROR,
                "ecto_sync: command failed: " + std::string(SPI_result_code_string(rc)), sql);
}

std::string quote_ident(const std::string &name) {
  const char *text = name.c_str();
  return pg_call([&] { return quote_identifier(text); });
}

std::string relation_name(uint32_t relid) {
  char *name = with_caller_search_path([&] {
    return get_rel_name(relid) ? DatumGetCString(DirectFunctionCall1(regclassout, relid))
                               : static_cast<char *>(nullptr);
  });
  return name ? name : std::to_string(relid);
}

std::string jsonb_text(const Jsonb *value) {
  return pg_call([&] {
    return JsonbToCString(nullptr, const_cast<JsonbContainer *>(&value->root), VARSIZE(value));
  });
}

}  // namespace ectosync
