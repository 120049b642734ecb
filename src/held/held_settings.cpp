/*
 * held_settings.cpp: a held value under row level security is read under
 * the custom settings of the session that held it.
 *
 * Row level security may decide what a role sees by a setting rather than
 * by a role: USING (tenant = current_setting('app.tenant')::int), or a
 * function such as auth.uid() that reads request.jwt.claims.  A hub whose
 * users share one role and differ by such a setting holds each user's
 * values on one connection, and asks for their changes under whatever
 * setting its last request left: read so, one user's value would take
 * another's rows.  So hold() keeps the session's custom settings (names
 * with a dot that no loaded module defines: PostgreSQL's placeholders),
 * and a read of the value puts them back for its duration, at a GUC nest
 * level of its own, as a function's SET clause does.  One set since and
 * not kept reads as '', as a RESET leaves it.
 */
#include "held/held_internal.hpp"
#include "pg/pg_boundary.hpp"

extern "C" {
#include "utils/guc.h"
#include "utils/guc_tables.h"
}

#include <map>
#include <string>
#include <utility>

namespace ectosync {

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

AsHeldSettings::AsHeldSettings(const CustomSettings &kept) {
  CustomSettings current = custom_settings();
  std::map<std::string, std::string> wanted(kept.begin(), kept.end());
  for (const auto &[name, value] : current) wanted.emplace(name, ""); /* (not kept) */
  std::map<std::string, std::string> now(current.begin(), current.end());
  std::vector<std::pair<std::string, std::string>> changes;
  for (const auto &[name, value] : wanted) {
    auto it = now.find(name);
    if (it == now.end() || it->second != value) changes.emplace_back(name, value);
  }
  if (changes.empty()) return;
  level_ = pg_call([] { return NewGUCNestLevel(); });
  try {
    for (const auto &[name, value] : changes)
      pg_call([&] {
        (void)set_config_option(name.c_str(), value.c_str(), PGC_USERSET, PGC_S_SESSION,
                                GUC_ACTION_SAVE, true, 0, false);
      });
  } catch (...) {
    AtEOXact_GUC(false, level_);
    throw;
  }
}

AsHeldSettings::~AsHeldSettings() {
  /* (restores what the read found; it cannot fail for values that were set) */
  if (level_ >= 0) AtEOXact_GUC(false, level_);
}

}  // namespace ectosync
