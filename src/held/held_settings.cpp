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
 * and every read of a value of the session's own puts them back for its
 * duration, at a GUC nest level of its own, as a function's SET clause
 * does: also one that row level security starts to apply to during the
 * read, and the load of a shared value that becomes the session's own when
 * a policy starts to apply to it (unshare()).  One set since and
 * not kept reads as '', as a RESET leaves it.  Settings that a module
 * defines, and PostgreSQL's own, are read as the caller has them.
 */
#include "held/held_internal.hpp"
#include "pg/pg_boundary.hpp"
#include "pg/sql_context.hpp"

extern "C" {
#include "utils/guc.h"
#include "utils/guc_tables.h"
}

#include <map>
#include <memory>
#include <string>
#include <utility>

namespace ectosync {

/* The last settings kept: a hub's values held under one set share a copy
 * (request.jwt.claims or request.headers may be kilobytes). */
std::shared_ptr<const CustomSettings> kept_settings() {
  static auto *last = new std::shared_ptr<const CustomSettings>();
  CustomSettings now = custom_settings();
  if (!*last || **last != now) *last = std::make_shared<const CustomSettings>(std::move(now));
  return *last;
}

AsHeldSettings::AsHeldSettings(const std::shared_ptr<const CustomSettings> &kept) {
  static const CustomSettings none;
  const CustomSettings &wanted = kept ? *kept : none;
  CustomSettings current = custom_settings();
  if (current == wanted) return; /* (the usual case) */
  std::map<std::string, std::string> now(current.begin(), current.end());
  std::vector<std::pair<std::string, std::string>> changes;
  for (const auto &[name, value] : wanted) {
    auto it = now.find(name);
    /* (placeholders never go: one that did is a module's setting now, or
     * its prefix was reserved, and setting it could fail as PostgreSQL's
     * error, which would end a wait for every value) */
    if (it == now.end())
      throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  "ecto_sync: the setting \"" + name +
                      "\" that a value was held under is no longer a custom one",
                  "A module loaded since defines it, or reserved its prefix: the value cannot be "
                  "read as it was held.",
                  "Release the value and hold it again.");
    if (it->second != value) changes.emplace_back(name, value);
    now.erase(it);
  }
  for (const auto &[name, value] : now) /* (set since: as after RESET) */
    if (!value.empty()) changes.emplace_back(name, "");
  if (changes.empty()) return;
  level_ = pg_call([] { return NewGUCNestLevel(); });
  try {
    for (const auto &[name, value] : changes)
      pg_call([&] { set_for_nest_level(name.c_str(), value.c_str()); });
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
