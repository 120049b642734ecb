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
 * column or table) keeps what it needed before, with a WARNING; after a
 * DROP (event trigger on sql_drop) a watch that needed a dropped table or
 * column is removed, with a WARNING.
 */
#include "capture/watch.hpp"

#include "value/catalog.hpp"
#include "shmem/shared.hpp"
#include "value/catalog_internal.hpp"
#include "core/event.hpp"

extern "C" {
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

PG_FUNCTION_INFO_V1(ectosync_watch);
PG_FUNCTION_INFO_V1(ectosync_unwatch);
PG_FUNCTION_INFO_V1(ectosync_associations_json);
PG_FUNCTION_INFO_V1(ectosync_channels_array);
PG_FUNCTION_INFO_V1(ectosync_refresh_watches);
PG_FUNCTION_INFO_V1(ectosync_partitions_changed);
}

#include <algorithm>
#include <map>
#include <set>

namespace ectosync {

namespace {

/* ==== what a watch needs of each table ==== */

/* One end of a join table: its foreign key columns and what they reference. */
struct JoinTarget {
  uint32_t relid = 0;
  std::vector<int16_t> fk_attnums, target_attnums;
  std::vector<std::string> target_columns;
  bool operator==(const JoinTarget &o) const {
    return relid == o.relid && fk_attnums == o.fk_attnums && target_attnums == o.target_attnums;
  }
};

struct TableNeed {
  uint32_t relid = 0;
  std::vector<int16_t> pk;
  std::set<int16_t> tracked; /* non-pk columns to capture */
  bool is_join = false;
  std::vector<JoinTarget> join_targets;
};

using Needs = std::map<uint32_t, TableNeed>;

/* The attnums of columns, in order. */
std::vector<int16_t> attnums(const std::vector<Column> &cols) {
  std::vector<int16_t> out;
  for (const auto &c : cols) out.push_back(c.attnum);
  return out;
}

/* The entry of table in needs, created with its primary key when new. */
TableNeed &need_of(Needs &needs, const TableInfo &table) {
  TableNeed &need = needs[table.relid];
  need.relid = table.relid;
  need.pk = attnums(table.pk);
  return need;
}

/* Adds columns to the captured ones. */
void track(TableNeed &need, const std::vector<Column> &cols) {
  for (const auto &c : cols) need.tracked.insert(c.attnum);
}

/* Adds a join end unless it is there already. */
void add_join_target(TableNeed &need, const JoinTarget &target) {
  if (std::find(need.join_targets.begin(), need.join_targets.end(), target) ==
      need.join_targets.end())
    need.join_targets.push_back(target);
}

JoinTarget join_target(uint32_t relid, const std::vector<Column> &fk,
                       const std::vector<Column> &target) {
  JoinTarget out;
  out.relid = relid;
  out.fk_attnums = attnums(fk);
  out.target_attnums = attnums(target);
  for (const auto &c : target) out.target_columns.push_back(c.name);
  return out;
}

/* The needs of one plan node and everything under it. */
void collect_needs(const PlanNode &node, Needs &needs) {
  need_of(needs, node.table);
  for (const auto &a : node.assocs) {
    track(need_of(needs, node.table), a.owner_cols);
    track(need_of(needs, a.target->table), a.target_cols);
    if (a.join) {
      TableNeed &join = need_of(needs, *a.join);
      join.is_join = true;
      track(join, a.join_owner_cols);
      track(join, a.join_target_cols);
      add_join_target(join, join_target(node.table.relid, a.join_owner_cols, a.owner_cols));
      add_join_target(join, join_target(a.target->table.relid, a.join_target_cols, a.target_cols));
    }
    collect_needs(*a.target, needs);
  }
}

/* Needs of a plan; the primary key is never "tracked" on top. */
Needs needs_of(const Plan &plan) {
  Needs needs;
  collect_needs(*plan.root, needs);
  for (auto &[relid, need] : needs)
    for (int16_t attnum : need.pk) need.tracked.erase(attnum);
  return needs;
}

/* Merges b into a. */
void merge(Needs &a, const Needs &b) {
  for (const auto &[relid, need] : b) {
    TableNeed &into = a[relid];
    into.relid = relid;
    into.pk = need.pk;
    into.tracked.insert(need.tracked.begin(), need.tracked.end());
    into.is_join = into.is_join || need.is_join;
    for (const auto &t : need.join_targets) add_join_target(into, t);
  }
  for (auto &[relid, need] : a)
    for (int16_t attnum : need.pk) need.tracked.erase(attnum);
}

/* ==== their JSON forms ==== */

template <typename Container>
std::string int_array(const Container &values) {
  std::string out = "[";
  bool first = true;
  for (auto v : values) {
    out += (first ? "" : ", ") + std::to_string(v);
    first = false;
  }
  return out + "]";
}

/* The same numbers as an int2[] literal: {1,2}. */
template <typename Container>
std::string pg_int_array(const Container &values) {
  std::string json = int_array(values);
  return "{" + json.substr(1, json.size() - 2) + "}";
}

/* join_targets as JSON (the watched_tables column). */
std::string join_targets_text(const std::vector<JoinTarget> &targets) {
  std::string out = "[";
  for (size_t i = 0; i < targets.size(); ++i) {
    const JoinTarget &t = targets[i];
    std::string names = "[";
    for (size_t k = 0; k < t.target_columns.size(); ++k)
      names += (k ? ", " : "") + json_quote(t.target_columns[k]);
    out += (i ? ", " : "") + std::string("{\"relid\": ") + std::to_string(t.relid) +
           ", \"fk_attnums\": " + int_array(t.fk_attnums) +
           ", \"target_attnums\": " + int_array(t.target_attnums) +
           ", \"target_columns\": " + names + "]}";
  }
  return out + "]";
}

/* Needs as JSON (the watches.tables column). */
std::string needs_text(const Needs &needs) {
  std::string out = "[";
  bool first = true;
  for (const auto &[relid, n] : needs) {
    out += (first ? "" : ", ") + std::string("{\"relid\": ") + std::to_string(relid) +
           ", \"pk\": " + int_array(n.pk) + ", \"tracked\": " + int_array(n.tracked) +
           ", \"is_join\": " + (n.is_join ? "true" : "false") +
           ", \"join_targets\": " + join_targets_text(n.join_targets) + "}";
    first = false;
  }
  return out + "]";
}

/* A JSON array of numbers as attnums. */
std::vector<int16_t> ints_of(const Json *array) {
  std::vector<int16_t> out;
  if (array)
    for (const auto &item : array->items) out.push_back(static_cast<int16_t>(std::stoi(item.text)));
  return out;
}

/* The inverse of needs_text(). */
Needs parse_needs(const std::string &text) {
  Needs needs;
  Json json = parse_spec(text);
  for (const auto &item : json.items) {
    TableNeed n;
    n.relid = static_cast<uint32_t>(std::stoul(item.find("relid")->text));
    n.pk = ints_of(item.find("pk"));
    for (int16_t a : ints_of(item.find("tracked"))) n.tracked.insert(a);
    const Json *is_join = item.find("is_join");
    n.is_join = is_join && is_join->boolean;
    if (const Json *targets = item.find("join_targets"))
      for (const auto &t : targets->items) {
        JoinTarget jt;
        jt.relid = static_cast<uint32_t>(std::stoul(t.find("relid")->text));
        jt.fk_attnums = ints_of(t.find("fk_attnums"));
        jt.target_attnums = ints_of(t.find("target_attnums"));
        if (const Json *names = t.find("target_columns"))
          for (const auto &name : names->items) jt.target_columns.push_back(name.text);
        n.join_targets.push_back(jt);
      }
    needs[n.relid] = n;
  }
  return needs;
}

/* ==== privileges ==== */

/*
 * The extension's own catalog work (its tables, every watch's triggers)
 * runs as the bootstrap superuser, after the caller's rights were checked,
 * in a security-restricted operation and with the pinned settings of the
 * caller's SpiScope (sql_context.hpp): the caller needs no privileges on
 * ectosync's tables, and nothing the caller defined can run with those
 * rights.
 */
class AsSuperuser : public AsRole {
 public:
  AsSuperuser() : AsRole(BOOTSTRAP_SUPERUSERID) {}
};

/* A relation as regclass prints it for the caller: for messages. */
std::string table_name(uint32_t relid) {
  return relation_name(relid);
}

/* "schema"."name" of a relation: for generated SQL. */
std::string sql_table_name(uint32_t relid) {
  char *name = pg_call([&] {
    char *relname = get_rel_name(relid);
    return relname
               ? quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname)
               : nullptr;
  });
  if (!name)
    throw Error(ERRCODE_UNDEFINED_TABLE, "relation " + std::to_string(relid) + " does not exist");
  return name;
}

/* Only the owner of every table of a watch may install or remove its triggers. */
void check_owner(const std::vector<uint32_t> &relids) {
  Oid role = pg_call([] { return GetUserId(); });
  for (uint32_t relid : relids) {
    if (pg_call([&] { return pg_class_ownercheck(relid, role); })) continue;
    throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE, "must be owner of table " + table_name(relid),
                "ecto_sync installs capture triggers on every table of the watch.",
                "Ask the owner of the tables (or a superuser) to call ectosync.watch().");
  }
}

/*
 * Temporary tables live in one session: the worker cannot read them, and
 * their batches would only fail.
 */
void refuse_temporary(const std::vector<uint32_t> &relids) {
  for (uint32_t relid : relids) {
    if (pg_call([&] { return get_rel_persistence(relid); }) != RELPERSISTENCE_TEMP) continue;
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                "ecto_sync cannot watch temporary table \"" +
                    std::string(pg_call([&] { return get_rel_name(relid); })) + "\"",
                "Only the session that created a temporary table can read it; ecto_sync's "
                "worker reads changed rows from its own session.");
  }
}

/* ==== triggers and ectosync.watched_tables ==== */

/*
 * Each captured table has two triggers calling ectosync.capture()
 * (capture.cpp): the row trigger, whose arguments name the columns to
 * capture, and a statement trigger for TRUNCATE (a RELOAD marker).
 */
const char *const kTrigger = "ectosync_capture";
const char *const kTruncateTrigger = "ectosync_truncate";

/*
 * The row trigger's arguments: the number of primary-key columns, then each
 * key column to capture (primary key first) as "<attnum>:<name>", which
 * capture.cpp's trigger_attnum() reads so that a dump restores the trigger
 * right onto a table whose attnums differ.
 */
std::vector<std::string> trigger_args(const TableNeed &n) {
  std::vector<std::string> args = {std::to_string(n.pk.size())};
  auto add = [&](int16_t attnum) {
    char *name = pg_call([&] { return get_attname(n.relid, attnum, false); });
    args.push_back(std::to_string(attnum) + ":" + name);
  };
  for (int16_t a : n.pk) add(a);
  for (int16_t a : n.tracked) add(a);
  return args;
}

/* CREATE TRIGGER with the capture contract's arguments. */
std::string create_trigger_sql(const std::vector<std::string> &args, const std::string &table) {
  std::string list;
  for (const std::string &arg : args)
    list += (list.empty() ? "" : ", ") +
            std::string(pg_call([&] { return quote_literal_cstr(arg.c_str()); }));
  return "CREATE TRIGGER " + std::string(kTrigger) + " AFTER INSERT OR UPDATE OR DELETE ON " +
         table + " FOR EACH ROW EXECUTE FUNCTION ectosync.capture(" + list + ")";
}

std::string create_truncate_trigger_sql(const std::string &table) {
  return "CREATE TRIGGER " + std::string(kTruncateTrigger) + " AFTER TRUNCATE ON " + table +
         " FOR EACH STATEMENT EXECUTE FUNCTION ectosync.capture()";
}

/* A capture trigger as the catalog has it. */
struct TriggerState {
  bool exists = false;
  char enabled = 'D'; /* pg_trigger.tgenabled: 'A' fires always, 'D' never */
  std::vector<std::string> args;
};

/* The trigger called name on relid: whether it exists, fires, and with what. */
TriggerState trigger_state(uint32_t relid, const char *name) {
  TriggerState state;
  auto rows = spi_rows(
      "SELECT tgenabled::pg_catalog.text, pg_catalog.encode(tgargs, 'hex') FROM"
      " pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1"
      " AND tgname OPERATOR(pg_catalog.=) $2",
      {{OIDOID, std::to_string(relid)}, {TEXTOID, name}}, false);
  if (rows.empty()) return state;
  state.exists = true;
  state.enabled = rows[0][0]->at(0);
  /* tgargs: each argument followed by a NUL byte. */
  const std::string &hex = *rows[0][1];
  std::string arg;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    char c = static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    if (c == '\0') {
      state.args.push_back(arg);
      arg.clear();
    } else {
      arg += c;
    }
  }
  return state;
}

/*
 * ENABLE ALWAYS: capture fires in session_replication_role = replica too
 * (logical replication's apply, restores that set it); a trigger someone
 * disabled fires again (the ddl_command_end event trigger calls this after
 * ALTER TABLE ... DISABLE TRIGGER).
 */
void enable_always(const std::string &table, const char *trigger) {
  spi_exec("ALTER TABLE " + table + " ENABLE ALWAYS TRIGGER " + trigger);
}

/* True when the relation still exists. */
bool relation_exists(uint32_t relid) {
  return !spi_rows("SELECT 1 FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
                   {{OIDOID, std::to_string(relid)}}, false)
              .empty();
}

/* True when the table has the trigger called name. */
bool trigger_exists(uint32_t relid, const char *name) {
  return !spi_rows(
              "SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1"
              " AND tgname OPERATOR(pg_catalog.=) $2",
              {{OIDOID, std::to_string(relid)}, {TEXTOID, name}}, false)
              .empty();
}

/* Drops the trigger called name from table relid, if it is there. */
void drop_trigger(uint32_t relid, const char *name) {
  if (trigger_exists(relid, name))
    spi_exec("DROP TRIGGER " + std::string(name) + " ON " + sql_table_name(relid));
}

/* The stored row of a watched table, as text, to see whether it changed. */
std::map<uint32_t, std::string> stored_rows() {
  std::map<uint32_t, std::string> out;
  for (const auto &row : spi_rows(
           "SELECT relid::pg_catalog.oid, pg_catalog.jsonb_build_array(pk_attnums, tracked_attnums,"
           " is_join, join_targets)::pg_catalog.text FROM ectosync.watched_tables",
           {}, false))
    out[static_cast<uint32_t>(std::stoul(*row[0]))] = *row[1];
  return out;
}

/* A table's need as watched_tables would show it, to compare with stored_rows(). */
std::string row_text(const TableNeed &n) {
  auto rows = spi_rows(
      "SELECT pg_catalog.jsonb_build_array($1::pg_catalog.int2[], $2::pg_catalog.int2[],"
      " $3::boolean, $4::pg_catalog.jsonb)::pg_catalog.text",
      {{TEXTOID, pg_int_array(n.pk)},
       {TEXTOID, pg_int_array(n.tracked)},
       {TEXTOID, n.is_join ? "true" : "false"},
       {TEXTOID, join_targets_text(n.join_targets)}},
      false);
  return *rows.at(0)[0];
}

/* ==== partitions ==== */

/*
 * The capture trigger of a partitioned table is cloned to every partition
 * by PostgreSQL, those created or attached later too; its TRUNCATE trigger
 * is not (statement triggers never are), and a TRUNCATE of a partition
 * fires only the partition's own.  So each partition (at any depth) gets
 * an ectosync_truncate trigger of its own, with the argument 'partition':
 * capture.cpp reports it under the partitioned table.  Partitions made
 * later get it from the ddl_command_end event trigger
 * (ectosync._on_partition_ddl, partitions_changed()).
 */
const char *const kPartitionsSql =
    "SELECT p.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree($1) p"
    " JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid"
    " WHERE p.relid OPERATOR(pg_catalog.<>) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY "
    "('{r,p}'::pg_catalog.\"char\"[])";

/* The partitions of relid at any depth (none for an ordinary table). */
std::vector<uint32_t> partitions_of(uint32_t relid) {
  std::vector<uint32_t> out;
  for (const auto &row : spi_rows(kPartitionsSql, {{REGCLASSOID, std::to_string(relid)}}, false))
    out.push_back(static_cast<uint32_t>(std::stoul(*row[0])));
  return out;
}

/* Gives every partition of relid its TRUNCATE trigger. */
void install_partition_triggers(uint32_t relid) {
  for (uint32_t part : partitions_of(relid))
    if (!trigger_exists(part, kTruncateTrigger))
      spi_exec("CREATE TRIGGER " + std::string(kTruncateTrigger) + " AFTER TRUNCATE ON " +
               sql_table_name(part) +
               " FOR EACH STATEMENT EXECUTE FUNCTION ectosync.capture('partition')");
}

/* Makes table n.relid's triggers and row say n, and the triggers fire always. */
void install(const TableNeed &n, const std::map<uint32_t, std::string> &stored) {
  install_partition_triggers(n.relid);
  std::string text = row_text(n);
  std::vector<std::string> args = trigger_args(n);
  TriggerState row = trigger_state(n.relid, kTrigger);
  TriggerState truncate = trigger_state(n.relid, kTruncateTrigger);
  auto it = stored.find(n.relid);
  bool row_right = row.exists && row.args == args;
  if (it != stored.end() && it->second == text && row_right && row.enabled == 'A' &&
      truncate.exists && truncate.enabled == 'A')
    return;
  std::string table = sql_table_name(n.relid);
  if (!row_right) {
    drop_trigger(n.relid, kTrigger);
    spi_exec(create_trigger_sql(args, table));
  }
  if (!truncate.exists) spi_exec(create_truncate_trigger_sql(table));
  if (!row_right || row.enabled != 'A') enable_always(table, kTrigger);
  if (!truncate.exists || truncate.enabled != 'A') enable_always(table, kTruncateTrigger);
  /* Not captured until now (no trigger, or a disabled one): rows cached
   * before may have changed unseen, and so may values that hold the table
   * (a RELOAD marker for it; other tables and the values that do not hold
   * this one are left alone).  After CREATE TRIGGER or ALTER TABLE, which
   * waited for every writer of the table to commit: a row read after this
   * is read with a later snapshot. */
  if (!row.exists || row.enabled == 'D' || !truncate.exists || truncate.enabled == 'D')
    pg_call([&] { restart_capture(n.relid, kReloadCapture); });
  spi_exec(
      "INSERT INTO ectosync.watched_tables (relid, pk_attnums, tracked_attnums, is_join,"
      " join_targets) VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.int2[],"
      " $3::pg_catalog.int2[], $4::boolean, $5::pg_catalog.jsonb)"
      " ON CONFLICT (relid) DO UPDATE SET pk_attnums = EXCLUDED.pk_attnums,"
      " tracked_attnums = EXCLUDED.tracked_attnums, is_join = EXCLUDED.is_join,"
      " join_targets = EXCLUDED.join_targets",
      {{TEXTOID, std::to_string(n.relid)},
       {TEXTOID, pg_int_array(n.pk)},
       {TEXTOID, pg_int_array(n.tracked)},
       {TEXTOID, n.is_join ? "true" : "false"},
       {TEXTOID, join_targets_text(n.join_targets)}});
}

/* Table relid is no longer needed by any watch. */
void uninstall(uint32_t relid) {
  if (relation_exists(relid)) {
    drop_trigger(relid, kTrigger);
    drop_trigger(relid, kTruncateTrigger);
    for (uint32_t part : partitions_of(relid)) drop_trigger(part, kTruncateTrigger);
  }
  spi_exec(
      "DELETE FROM ectosync.watched_tables"
      " WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
      {{TEXTOID, std::to_string(relid)}});
}

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

/* A WARNING from C++ code. */
void warn(const std::string &message, const std::string &detail) {
  pg_call(
      [&] { ereport(WARNING, (errmsg("%s", message.c_str()), errdetail("%s", detail.c_str()))); });
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
  spi_exec("LOCK TABLE ectosync.watches IN SHARE ROW EXCLUSIVE MODE");
}

/*
 * What watch w needs now.  A spec that no longer resolves keeps what it
 * needed before (a rename changed an association's name), except after a
 * DROP, or when a table or column it needed is gone: then the watch is
 * removed (returns false).  Both with a WARNING.
 */
bool resolve_needs(const Watch &w, bool after_drop, Needs &now) {
  Needs stored = parse_needs(w.tables);
  std::string failure;
  if (relation_exists(w.root)) {
    try {
      now = needs_of(resolve_plan_text(w.root, w.spec));
      return true;
    } catch (const Error &e) {
      failure = e.message;
    }
  }
  if (!after_drop && needs_exist(stored)) {
    warn("ecto_sync: the watch of " + table_name(w.root) + " with assocs " + w.spec +
             " no longer resolves; its triggers stay as they were",
         failure);
    now = stored;
    return true;
  }
  delete_watch(w);
  if (failure.empty()) /* the root is gone, and its name with it */
    warn("ecto_sync: removed the watch of a dropped table", "It had assocs " + w.spec + ".");
  else
    warn("ecto_sync: removed the watch of " + table_name(w.root) + " with assocs " + w.spec,
         failure);
  return false;
}

/*
 * Re-resolves every watch and installs the union of their needs.  after_drop:
 * watches of dropped tables/columns go away.
 */
void refresh(bool after_drop) {
  Needs all;
  for (const Watch &w : stored_watches()) {
    Needs now;
    if (!resolve_needs(w, after_drop, now)) continue;
    spi_exec(
        /* tables and $3 are never null: = says what IS DISTINCT FROM would */
        "UPDATE ectosync.watches SET tables = $3::pg_catalog.jsonb"
        " WHERE root::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
        " AND spec OPERATOR(pg_catalog.=) $2::pg_catalog.jsonb"
        " AND NOT (tables OPERATOR(pg_catalog.=) $3::pg_catalog.jsonb)",
        {{TEXTOID, std::to_string(w.root)}, {TEXTOID, w.spec}, {TEXTOID, needs_text(now)}});
    merge(all, now);
  }
  auto stored = stored_rows();
  for (const auto &[relid, n] : all) install(n, stored);
  for (const auto &[relid, text] : stored)
    if (!all.count(relid)) uninstall(relid);
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
  refresh(false);
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
  refresh(false);
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

/* The channel of every table of the plan, as a text[]. */
ArrayType *channels(uint32_t relid, const Jsonb *assocs) {
  const Plan &plan = resolve_plan(relid, assocs);
  std::vector<std::string> names;
  for (uint32_t t : plan.tables()) names.push_back(channel_name(t));
  int n = static_cast<int>(names.size());
  Datum *elems = static_cast<Datum *>(pg_call([&] { return palloc(n * sizeof(Datum)); }));
  for (int i = 0; i < n; ++i) {
    const char *text = names[i].c_str();
    elems[i] = pg_call([&] { return CStringGetTextDatum(text); });
  }
  return pg_call([&] { return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT); });
}

}  // namespace

namespace {
bool refreshing = false; /* refresh_watches() runs: its own DDL fires the event triggers */
}  // namespace

void refresh_watches(bool after_drop) {
  if (refreshing) return;
  struct Flag {
    Flag() { refreshing = true; }
    ~Flag() { refreshing = false; }
  } flag;
  SpiScope spi;
  AsSuperuser su;
  lock_watches();
  refresh(after_drop);
}

bool refreshing_watches() {
  return refreshing;
}

void keep_capture_enabled(uint32_t relid) {
  if (refreshing) return;
  struct Flag {
    Flag() { refreshing = true; }
    ~Flag() { refreshing = false; }
  } flag;
  SpiScope spi;
  bool missed = false;
  for (const char *name : {kTrigger, kTruncateTrigger}) {
    TriggerState state = trigger_state(relid, name);
    if (!state.exists || state.enabled == 'A') continue;
    missed = missed || state.enabled == 'D';
    AsSuperuser su;
    enable_always(sql_table_name(relid), name);
  }
  /* Disabled, it may have missed changes (its event trigger may not have
   * fired at once): a capture restart. */
  if (missed) pg_call([&] { restart_capture(relid, kReloadCapture); });
}

}  // namespace ectosync

using namespace ectosync;

/* ectosync.watch(tbl regclass, assocs jsonb DEFAULT '[]') RETURNS jsonb */
extern "C" Datum ectosync_watch(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);
  PG_RETURN_JSONB_P(pg_entry([&] { return watch(relid, assocs); }));
}

/* ectosync.unwatch(tbl regclass, assocs jsonb DEFAULT NULL) RETURNS void */
extern "C" Datum ectosync_unwatch(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_VOID();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);
  pg_entry([&] { unwatch(relid, assocs); });
  PG_RETURN_VOID();
}

/* ectosync._associations(tbl regclass) RETURNS jsonb: associations() reads it */
extern "C" Datum ectosync_associations_json(PG_FUNCTION_ARGS) {
  Oid relid = PG_GETARG_OID(0);
  PG_RETURN_JSONB_P(pg_entry([&] { return to_jsonb_value(associations_json(relid)); }));
}

/* ectosync._channels(tbl regclass, assocs jsonb) RETURNS text[]: channels() unnests it */
extern "C" Datum ectosync_channels_array(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  Oid relid = PG_GETARG_OID(0);
  Jsonb *assocs = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);
  PG_RETURN_ARRAYTYPE_P(pg_entry([&] { return channels(relid, assocs); }));
}

/*
 * ectosync._partitions_changed(root regclass, altered boolean): the
 * ddl_command_end event trigger's work when a partition of root was
 * created (altered: false) or root's partition tree was altered (ATTACH,
 * DETACH: altered).  New partitions get their TRUNCATE trigger; after an
 * ALTER, rows came or went uncaptured, so at commit the table's capture
 * restarts as in watch(): a RELOAD marker that is its cache floor.
 */
extern "C" Datum ectosync_partitions_changed(PG_FUNCTION_ARGS) {
  Oid root = PG_GETARG_OID(0);
  bool altered = PG_GETARG_BOOL(1);
  pg_entry([&] {
    SpiScope spi;
    AsSuperuser su;
    if (spi_rows("SELECT FROM ectosync.watched_tables WHERE relid::pg_catalog.oid"
                 " OPERATOR(pg_catalog.=) $1",
                 {{OIDOID, std::to_string(root)}}, false)
            .empty())
      return;
    install_partition_triggers(root);
    if (altered) pg_call([&] { restart_capture_at_commit(root); });
  });
  PG_RETURN_VOID();
}

/* ectosync._refresh_watches(after_drop boolean): the sql_drop event trigger's work */
extern "C" Datum ectosync_refresh_watches(PG_FUNCTION_ARGS) {
  bool after_drop = PG_GETARG_BOOL(0);
  pg_entry([&] { refresh_watches(after_drop); });
  PG_RETURN_VOID();
}
