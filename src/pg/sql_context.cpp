/*
 * sql_context.cpp: the fixed settings and the role of ecto_sync's own SQL
 * (see sql_context.hpp for why).
 */
#include "pg/sql_context.hpp"

#include "core/sql_check.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
}

#include <cstring>

namespace ectosync {

const char *const kPinnedSearchPath = "pg_catalog, pg_temp";

namespace {

struct Pin {
  const char *name, *value;
};

/* Every setting that names resolve by or that to_jsonb() renders by. */
constexpr Pin kPins[] = {
    {"search_path", kPinnedSearchPath},
    {"TimeZone", "UTC"},
    {"DateStyle", "ISO, MDY"},
    {"IntervalStyle", "postgres"},
    {"extra_float_digits", "1"},
    {"bytea_output", "hex"},
    {"lc_monetary", "C"},
    {"timezone_abbreviations", "Default"}, /* ("EST" in a filter value) */
    {"quote_all_identifiers", "off"},      /* (a regclass column's rendering) */
};

int depth = 0;               /* live guards */
bool session_pinned = false; /* pin_settings_for_session(): every guard finds them in force */
std::string caller_path;     /* search_path before the outermost guard */

}  // namespace

void set_for_nest_level(const char *name, const char *value) {
  (void)set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

PinnedSettings::PinnedSettings() {
  if (depth > 0) {
    ++depth;
    return;
  }
  /* The worker's guards (each read of a table) only undo what the read
   * did: the previous guard restored the pinned values. */
  if (session_pinned) {
    caller_path = kPinnedSearchPath;
    nest_level_ = pg_call([] { return NewGUCNestLevel(); });
    ++depth;
    return;
  }
  caller_path = pg_call([] { return GetConfigOption("search_path", false, false); });
  nest_level_ = pg_call([] { return NewGUCNestLevel(); });
  ++depth;
  try {
    for (const Pin &pin : kPins)
      pg_call([&] {
        const char *now = GetConfigOption(pin.name, false, false);
        if (!now || strcmp(now, pin.value) != 0) set_for_nest_level(pin.name, pin.value);
      });
  } catch (...) {
    --depth;
    AtEOXact_GUC(false, nest_level_);
    throw;
  }
}

PinnedSettings::~PinnedSettings() {
  --depth;
  /* Restores every setting to what it was before the guard: also a plain
   * SET that code the statement reached made (an owner's cast), as
   * REFRESH MATERIALIZED VIEW does; it cannot fail for values that were
   * set. */
  if (nest_level_ >= 0) AtEOXact_GUC(false, nest_level_);
}

bool running_generated_sql() {
  return depth > 0 || session_pinned;
}

void pin_settings_for_session() {
  for (const Pin &pin : kPins)
    pg_call([&] { SetConfigOption(pin.name, pin.value, PGC_SUSET, PGC_S_OVERRIDE); });
  session_pinned = true;
}

AsRole::AsRole(Oid role) {
  pg_call([&] {
    GetUserIdAndSecContext(&user_, &context_);
    SetUserIdAndSecContext(role,
                           context_ | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  });
}

AsRole::~AsRole() {
  SetUserIdAndSecContext(user_, context_);
}

void require_pinned_settings(const std::string &sql) {
  bool pinned =
      depth > 0 && namespace_search_path && strcmp(namespace_search_path, kPinnedSearchPath) == 0;
  if (!pinned)
    throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: a statement ran outside its pinned settings",
                sql);
}

void require_settings_unchanged() {
  for (const Pin &pin : kPins) {
    const char *now = pg_call([&] { return GetConfigOption(pin.name, false, false); });
    if (now && strcmp(now, pin.value) == 0) continue;
    throw Error(
        ERRCODE_E_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED,
        std::string("ecto_sync: setting \"") + pin.name + "\" changed while a statement ran",
        "Code that the statement ran (a cast to json, a policy's function) set it to \"" +
            std::string(now ? now : "") +
            "\": rows rendered so would differ from every other session's.",
        "Give that function a SET clause, which restores the setting when it returns, and "
        "call no ecto_sync function from code that changes it.");
  }
}

void require_pinned(const std::string &sql) {
  require_pinned_settings(sql);
  std::vector<std::string> findings = unqualified_names(sql);
  if (!findings.empty()) {
    std::string what;
    for (const std::string &f : findings) what += (what.empty() ? "" : "; ") + f;
    throw Error(ERRCODE_INTERNAL_ERROR,
                "ecto_sync: generated SQL names an operator, function, type or collation "
                "unqualified: " +
                    what,
                sql);
  }
}

bool reads_committed_now() {
  return !IsolationUsesXactSnapshot() && !TransactionIdIsValid(GetTopTransactionIdIfAny());
}

std::string caller_search_path() {
  if (depth > 0) return caller_path;
  const char *path = pg_call([] { return GetConfigOption("search_path", false, false); });
  return path ? path : "";
}

void with_caller_search_path(void (*fn)(void *), void *arg) {
  if (depth == 0 || caller_path == kPinnedSearchPath) {
    pg_call([&] { fn(arg); });
    return;
  }
  const char *path = caller_path.c_str();
  pg_call([&] {
    int level = NewGUCNestLevel();
    set_for_nest_level("search_path", path);
    fn(arg);
    AtEOXact_GUC(false, level);
  });
}

CustomSettings custom_settings() {
  CustomSettings out;
  int count = pg_call([] { return GetNumConfigOptions(); });
  struct config_generic **vars = pg_call([] { return get_guc_variables(); });
  for (int i = 0; i < count; i++) {
    if (!(vars[i]->flags & GUC_CUSTOM_PLACEHOLDER)) continue;
    const char *name = vars[i]->name;
    const char *value = pg_call([&] { return GetConfigOption(name, true, false); });
    out.emplace_back(name, value ? value : "");
  }
  return out;
}

}  // namespace ectosync
