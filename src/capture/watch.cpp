/*
 * watch.cpp: ectosync.watch(), unwatch(), the association listing and the
 * channels of a value shape; the capture triggers and the extension tables
 * that record watches (see the SQL script's "catalog, watch, load" section).
 *
 * A watch is (root, normalized spec).  What it needs of each table of its
 * plan (the primary key, the other key columns to capture, join-table
 * targets) is computed from the plan and stored with it (watches.tables).
 * ectosync.watched_tables holds the union over all watches, and each
 * watched table carries a row trigger ectosync_capture whose arguments are
 * that union (whenever it changes, the trigger is dropped and recreated)
 * and a statement trigger ectosync_truncate for TRUNCATE.
 *
 * Every change of the watches re-resolves all of them, so after a
 * dump/restore (new oids/attnums) the triggers follow the specs.  A watch
 * whose spec no longer resolves (an association was renamed with its
 * column or table, its foreign key dropped) keeps what it needed before,
 * with a WARNING; after a DROP (event trigger on sql_drop) a watch that
 * needed a dropped table or column is removed, with a WARNING.  Values
 * are loaded only under watches that capture what they need
 * (captured.cpp).
 */
#include "capture/watch.hpp"
#include "capture/xact_buffer.hpp"
#include "capture/watch_internal.hpp"

#include "value/catalog.hpp"
#include "shmem/shmem.hpp"
#include "value/catalog_internal.hpp"
#include "core/event.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
}

#include <algorithm>
#include <map>
#include <set>

namespace ectosync {

namespace {

bool refreshing = false; /* our own DDL runs: the event triggers it fires have nothing to do */

/* Sets refreshing for its lifetime. */
class OwnDdl {
 public:
  OwnDdl() : was_(refreshing) { refreshing = true; }
  ~OwnDdl() { refreshing = was_; }

 private:
  bool was_;
};

/* ==== the watches ==== */

struct Watch {
  uint32_t root = 0;
  std::string spec, tables;
};

/* Every recorded watch. */
std::vector<Watch> stored_watches() {
  std::vector<Watch> out;
  for (const auto &row :
       spi_rows("SELECT root::pg_catalog.oid, spec::pg_catalog.text, tables::pg_catalog.text"
                " FROM ectosync.watches ORDER BY 1, 2",
                {}, false))
    out.push_back(Watch{static_cast<uint32_t>(std::stoul(*row[0])), *row[1], *row[2]});
  return out;
}

/* True when every table and column that needs names still exists. */
bool needs_exist(const Needs &needs) {
  for (const auto &[relid, n] : needs) {
    std::set<int16_t> cols(n.pk.begin(), n.pk.end());
    cols.insert(n.tracked.begin(), n.tracked.end());
    std::string list = pg_int_array(cols);
    auto rows = spi_rows(
        "SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute"
        " WHERE attrelid OPERATOR(pg_catalog.=) $1"
        " AND attnum OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.int2[]) AND NOT attisdropped",
        {{OIDOID, std::to_string(relid)}, {TEXTOID, list}}, false);
    if (std::stoul(*rows.at(0)[0]) != cols.size()) return false;
  }
  return true;
}

/* Removes one recorded watch. */
void delete_watch(const Watch &w) {
  spi_exec(
      "DELETE FROM ectosync.watches WHERE root::pg_catalog.oid OPERATOR(pg_catalog.=)"
      " $1::pg_catalog.oid AND spec OPERATOR(pg_catalog.=) $2::pg_catalog.jsonb",
      {{TEXTOID, std::to_string(w.root)}, {TEXTOID, w.spec}});
}

/*
 * Watch changes one at a time: two refreshes would race to create the same
 * triggers.  Taken before the first write to ectosync.watches.
 */
void lock_watches() {
  Oid watches =
      pg_call([] { return get_relname_relid("watches", get_namespace_oid("ectosync", false)); });
  /* (bounded: a transaction that changed what is watched and stays open,
   * idle, would otherwise hold every other role's watch() and DDL) */
  lock_or_fail(watches, ShareRowExclusiveLock, "ectosync.watches",
               "Another transaction is changing what is watched (a watch(), unwatch() or "
               "schema change of a watched table, not committed yet).");
}

/*
 * Warns of a watch that a refresh found broken, in the session whose
 * command ran the refresh: any role's DDL refreshes every watch.  A
 * watch's spec holds its lists' constants (a $query's where: a tenant, an
 * email) of any table on its paths, which ectosync.watches shows only to
 * roles that may read all its tables; so does this.  The role that ran
 * the command (its SET ROLE, not the superuser refresh() runs as) gets
 * the WARNING only if it may read every table of the watch; otherwise it
 * goes to the server log alone.  (A watch of a dropped table: only to a
 * superuser.)
 */
void warn_of_watch(const Watch &w, const std::string &message, const std::string &detail) {
  std::vector<uint32_t> tables{w.root};
  for (const auto &[relid, need] : parse_needs(w.tables)) tables.push_back(relid);
  bool readable = pg_call([&] {
    Oid caller = GetOuterUserId();
    if (superuser_arg(caller)) return true;
    for (uint32_t relid : tables)
      if (get_rel_relkind(relid) == '\0' ||
          pg_class_aclcheck(relid, caller, ACL_SELECT) != ACLCHECK_OK)
        return false;
    return true;
  });
  warn(message, detail, readable ? WARNING : LOG_SERVER_ONLY);
}

/*
 * What watch w needs now.  A spec that no longer resolves keeps what it
 * needed before (a rename changed an association's name; a migration
 * dropped a foreign key, to add it again with another ON DELETE), unless
 * a table or column it needed is gone: then the watch is removed (returns
 * false).  Both with a WARNING.  Removing it for a dropped foreign key
 * would stop capture for good: the values of its spec, which resolve
 * again once the key is back, would not follow their tables.
 */
bool resolve_needs(const Watch &w, Needs &now) {
  Needs stored = parse_needs(w.tables);
  std::string failure;
  if (relation_exists(w.root)) {
    try {
      /* Its $query values as stored (rendered when it was watched), not
       * cast again: refresh() runs as the superuser, and a cast to a
       * column's type runs a domain's CHECK, code that the owner of any
       * table of the watch wrote.  What a watch needs of its tables does
       * not depend on the values. */
      now = needs_of(resolve_plan_text(w.root, w.spec, false));
      return true;
    } catch (const Error &e) {
      failure = e.message;
    }
  }
  /* (meanwhile the values of its spec fail to resolve: captured.cpp) */
  if (needs_exist(stored)) {
    warn_of_watch(w,
                  "ecto_sync: the watch of " + table_name(w.root) + " with assocs " + w.spec +
                      " no longer resolves; its triggers stay as they were",
                  failure);
    now = stored;
    return true;
  }
  delete_watch(w);
  if (failure.empty()) /* the root is gone, and its name with it */
    warn_of_watch(w, "ecto_sync: removed the watch of a dropped table",
                  "It had assocs " + w.spec + ".");
  else
    warn_of_watch(
        w, "ecto_sync: removed the watch of " + table_name(w.root) + " with assocs " + w.spec,
        failure);
  return false;
}

/*
 * Re-resolves every watch and installs the union of their needs; watches
 * that needed a table or column that is gone go away.
 */
void refresh() {
  OwnDdl own;
  auto before = captured_now();
  Needs all;
  for (const Watch &w : stored_watches()) {
    Needs now;
    if (!resolve_needs(w, now)) continue;
    spi_exec(
        /* tables and $3 are never null: = says what IS DISTINCT FROM would */
        "UPDATE ectosync.watches SET tables = $3::pg_catalog.jsonb"
        " WHERE root::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
        " AND spec OPERATOR(pg_catalog.=) $2::pg_catalog.jsonb"
        " AND NOT (tables OPERATOR(pg_catalog.=) $3::pg_catalog.jsonb)",
        {{TEXTOID, std::to_string(w.root)}, {TEXTOID, w.spec}, {TEXTOID, needs_text(now)}});
    merge(all, now);
  }
  /* The values loaded while those tables were captured as before must
   * hear that they no longer are (captured.cpp). */
  std::vector<uint32_t> lost = capture_lost(before, all);
  if (!lost.empty()) pg_call([] { attach_database_slot(); });
  for (uint32_t relid : lost) remember_reload(relid, kReloadUncaptured);
  auto stored = stored_rows();
  for (const auto &[relid, n] : all) install(n, stored);
  for (const auto &[relid, text] : stored)
    if (!all.count(relid)) uninstall(relid);
  std::vector<uint32_t> watched;
  for (const auto &[relid, n] : all) watched.push_back(relid);
  install_policy_triggers(watched);
}

/* Records the watch of plan and installs its triggers; returns its table names. */
std::string record_watch(const Plan &plan) {
  SpiScope spi;
  check_owner(plan.tables());
  refuse_temporary(plan.tables());
  std::string tables = "[";
  for (uint32_t t : plan.tables())
    tables += (tables.size() > 1 ? ", " : "") + json_quote(table_name(t));
  tables += "]";
  AsSuperuser su;
  lock_watches();
  spi_exec(
      "INSERT INTO ectosync.watches (root, spec, tables) VALUES"
      " ($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.jsonb, $3::pg_catalog.jsonb)"
      " ON CONFLICT (root, spec) DO UPDATE"
      " SET tables = EXCLUDED.tables",
      {{TEXTOID, std::to_string(plan.root->table.relid)},
       {TEXTOID, plan.spec},
       {TEXTOID, needs_text(needs_of(plan))}});
  refresh();
  return tables;
}

Jsonb *to_jsonb_value(const std::string &text);

/*
 * ectosync.watch(): returns {"tables": ["posts", ...]}, built after the SPI
 * connection closed so that it lives in the caller's memory context.
 */
Jsonb *watch(uint32_t relid, const Jsonb *assocs) {
  Plan plan = resolve_plan_text(relid, assocs ? jsonb_text(assocs) : "[]");
  std::string tables = record_watch(plan);
  {
    SpiScope spi;
    for (uint32_t t : plan.tables()) warn_hidden_policy_sources(t);
  }
  return to_jsonb_value("{\"tables\": " + tables + "}");
}

/*
 * The stored spec that assocs names: its normalized form, or, when it no
 * longer resolves (renamed since), assocs itself as stored (jsonb equality
 * ignores key order).
 */
std::string watched_spec(uint32_t relid, const Jsonb *assocs) {
  std::string text = jsonb_text(assocs);
  try {
    return resolve_plan_text(relid, text).spec;
  } catch (const Error &) {
    return text;
  }
}

/* ectosync.unwatch(): one watch (assocs given) or every watch of relid. */
void unwatch(uint32_t relid, const Jsonb *assocs) {
  std::optional<std::string> spec;
  if (assocs) spec = watched_spec(relid, assocs);
  SpiScope spi;
  check_owner({relid});
  AsSuperuser su;
  lock_watches();
  if (spec)
    spi_exec(
        "DELETE FROM ectosync.watches WHERE root::pg_catalog.oid OPERATOR(pg_catalog.=)"
        " $1::pg_catalog.oid AND spec OPERATOR(pg_catalog.=) $2::pg_catalog.jsonb",
        {{TEXTOID, std::to_string(relid)}, {TEXTOID, *spec}});
  else
    spi_exec(
        "DELETE FROM ectosync.watches"
        " WHERE root::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
        {{TEXTOID, std::to_string(relid)}});
  refresh();
}

/* JSON array of the associations of relid, for ectosync.associations(). */
std::string associations_json(uint32_t relid) {
  SpiScope spi;
  auto catalog = make_catalog_source();
  std::vector<AssocDesc> found;
  try {
    found = discover(*catalog, relid);
  } catch (const AssocError &e) {
    throw to_error(e);
  }
  auto names = [&](uint32_t table, const std::vector<int16_t> &cols) {
    const TableDesc &t = catalog->table(table);
    std::string out = "[";
    for (size_t i = 0; i < cols.size(); ++i)
      out += (i ? ", " : "") + json_quote(t.column(cols[i])->name);
    return out + "]";
  };
  std::string out = "[";
  for (size_t i = 0; i < found.size(); ++i) {
    const AssocDesc &a = found[i];
    out += (i ? ", " : "") + std::string("{\"name\": ") + json_quote(a.name) +
           ", \"kind\": " + json_quote(assoc_kind_name(a.kind)) +
           ", \"target\": " + std::to_string(a.target) +
           ", \"owner_columns\": " + names(relid, a.owner_cols) +
           ", \"target_columns\": " + names(a.target, a.target_cols);
    if (a.join)
      out += ", \"through\": " + std::to_string(a.join) +
             ", \"through_owner_columns\": " + names(a.join, a.join_owner_cols) +
             ", \"through_target_columns\": " + names(a.join, a.join_target_cols);
    out += "}";
  }
  return out + "]";
}

/* jsonb from its text, in the current memory context. */
Jsonb *to_jsonb_value(const std::string &text) {
  const char *t = text.c_str();
  return pg_call([&] { return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(t))); });
}

/*
 * The channel of every table of the plan, and the database's own (its
 * RELOAD markers of every table: roles changed, a queue overflow past the
 * gap set), as a text[].
 */
ArrayType *channels(uint32_t relid, const Jsonb *assocs) {
  const Plan &plan = resolve_plan(relid, assocs);
  std::vector<std::string> names;
  for (uint32_t t : plan.tables()) names.push_back(channel_name(t));
  names.push_back(channel_name(0));
  int n = static_cast<int>(names.size());
  Datum *elems = static_cast<Datum *>(pg_call([&] { return palloc(n * sizeof(Datum)); }));
  for (int i = 0; i < n; ++i) {
    const char *text = names[i].c_str();
    elems[i] = pg_call([&] { return CStringGetTextDatum(text); });
  }
  return pg_call([&] { return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT); });
}

}  // namespace

void refresh_watches() {
  if (refreshing) return;
  OwnDdl own;
  SpiScope spi;
  AsSuperuser su;
  lock_watches();
  refresh();
}

bool refreshing_watches() {
  return refreshing;
}

std::set<uint32_t> oid_set(ArrayType *array) {
  Datum *elems = nullptr;
  bool *nulls = nullptr;
  int n = 0;
  pg_call([&] {
    deconstruct_array(array, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls, &n);
  });
  std::set<uint32_t> out;
  for (int i = 0; i < n; i++)
    if (!nulls[i]) out.insert(DatumGetObjectId(elems[i]));
  return out;
}

void keep_capture_enabled(uint32_t relid, uint32_t watched) {
  if (refreshing) return;
  OwnDdl own;
  SpiScope spi;
  bool missed = false;
  for (const char *name : {kTrigger, kTruncateTrigger}) {
    TriggerState state = trigger_state(relid, name);
    if (!state.exists || state.enabled == 'A') continue;
    missed = missed || state.enabled == 'D';
    AsSuperuser su;
    enable_always(relid, name, name == kTrigger);
  }
  /* Disabled, it may have missed changes (its event trigger may not have
   * fired at once): a capture restart. */
  if (missed) pg_call([&] { restart_capture(watched ? watched : relid, kReloadCapture); });
}

}  // namespace ectosync

using namespace ectosync;

/* ectosync.watch(tbl regclass, assocs jsonb DEFAULT '[]') RETURNS jsonb */
ECTOSYNC_FUNCTION(ectosync_watch) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = jsonb_arg_or_null(fcinfo, 1);
  PG_RETURN_JSONB_P(watch(relid, assocs));
}

/* ectosync.unwatch(tbl regclass, assocs jsonb DEFAULT NULL) RETURNS void */
ECTOSYNC_FUNCTION(ectosync_unwatch) {
  if (PG_ARGISNULL(0)) PG_RETURN_VOID();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = jsonb_arg_or_null(fcinfo, 1);
  unwatch(relid, assocs);
  PG_RETURN_VOID();
}

/* ectosync._associations(tbl regclass) RETURNS jsonb: associations() reads it */
ECTOSYNC_FUNCTION(ectosync_associations_json) {
  Oid relid = PG_GETARG_OID(0);
  PG_RETURN_JSONB_P(to_jsonb_value(associations_json(relid)));
}

/* ectosync._channels(tbl regclass, assocs jsonb) RETURNS text[]: channels() unnests it */
ECTOSYNC_FUNCTION(ectosync_channels_array) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = jsonb_arg_or_null(fcinfo, 1);
  PG_RETURN_ARRAYTYPE_P(channels(relid, assocs));
}

/*
 * ectosync._partitions_changed(root regclass, altered boolean): the
 * ddl_command_end event trigger's work when a partition of root was
 * created (altered: false) or root's partition tree was altered (ATTACH,
 * DETACH: altered).  New partitions get their TRUNCATE trigger; after an
 * ALTER, rows came or went uncaptured, so at commit the table's capture
 * restarts as in watch(): a RELOAD marker that is its cache floor.
 */
ECTOSYNC_FUNCTION(ectosync_partitions_changed) {
  Oid root = PG_GETARG_OID(0);
  bool altered = PG_GETARG_BOOL(1);
  /* (fired by our own DDL: install_partition_triggers() enables a
   * partition's trigger ALWAYS, an ALTER TABLE) */
  if (refreshing_watches()) PG_RETURN_VOID();
  [&] {
    SpiScope spi;
    /* Its owner's only: another role could otherwise reload its values. */
    check_owner({root});
    AsSuperuser su;
    if (spi_rows("SELECT FROM ectosync.watched_tables WHERE relid::pg_catalog.oid"
                 " OPERATOR(pg_catalog.=) $1",
                 {{OIDOID, std::to_string(root)}}, false)
            .empty())
      return;
    {
      OwnDdl own;
      install_partition_triggers(root);
    }
    /* (the event trigger calls it for any ALTER TABLE of a watched table:
     * only a partitioned one's partitions may have come or gone) */
    if (!altered || pg_call([&] { return get_rel_relkind(root); }) != RELKIND_PARTITIONED_TABLE)
      return;
    pg_call([&] { restart_capture_at_commit(root); });
    note_changed_wholesale(root);
  }();
  PG_RETURN_VOID();
}

/*
 * ectosync._refresh_watches(after_drop boolean): a refresh of every watch,
 * by the sql_drop event trigger or by hand.  Its argument no longer
 * matters: a drop removes the watches whose tables or columns are gone,
 * as any refresh does.
 */
ECTOSYNC_FUNCTION(ectosync_refresh_watches) {
  (void)fcinfo;
  refresh_watches();
  PG_RETURN_VOID();
}
