/*
 * triggers.cpp: the privileges watch() checks, the capture triggers on
 * watched tables and their partitions, and ectosync.watched_tables.
 */
#include "capture/watch.hpp"
#include "capture/watch_internal.hpp"

#include "value/catalog.hpp"
#include "shmem/shmem.hpp"
#include "value/catalog_internal.hpp"
#include "core/event.hpp"

extern "C" {
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
}

#include <algorithm>
#include <map>
#include <set>

namespace ectosync {

namespace {

/* ==== privileges ==== */

}  // namespace

/* A WARNING from C++ code. */
void warn(const std::string &message, const std::string &detail, int level) {
  pg_call(
      [&] { ereport(level, (errmsg("%s", message.c_str()), errdetail("%s", detail.c_str()))); });
}

/* Trigger arguments as SQL literals: 'a', 'b'. */
std::string quoted_list(const std::vector<std::string> &args) {
  std::string list;
  for (const std::string &arg : args)
    list += (list.empty() ? "" : ", ") +
            std::string(pg_call([&] { return quote_literal_cstr(arg.c_str()); }));
  return list;
}

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

namespace {

/* ==== triggers and ectosync.watched_tables ==== */

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

/* The key columns that capture trigger arguments name (trigger_args());
 * none when they are not such arguments (a trigger of the table's owner
 * that took the capture trigger's name). */
std::vector<int16_t> key_attnums(const std::vector<std::string> &args) {
  std::vector<int16_t> out;
  try {
    size_t n = args.empty() ? 0 : std::stoul(args[0]);
    for (size_t i = 1; i <= n && i < args.size(); i++)
      out.push_back(static_cast<int16_t>(std::stoi(args[i].substr(0, args[i].find(':')))));
  } catch (const std::exception &) {
    out.clear();
  }
  return out;
}

/* CREATE TRIGGER with the capture contract's arguments. */
std::string create_trigger_sql(const std::vector<std::string> &args, const std::string &table) {
  return "CREATE TRIGGER " + std::string(kTrigger) + " AFTER INSERT OR UPDATE OR DELETE ON " +
         table + " FOR EACH ROW EXECUTE FUNCTION ectosync.capture(" + quoted_list(args) + ")";
}

std::string create_truncate_trigger_sql(const std::string &table) {
  return "CREATE TRIGGER " + std::string(kTruncateTrigger) + " AFTER TRUNCATE ON " + table +
         " FOR EACH STATEMENT EXECUTE FUNCTION ectosync.capture()";
}

}  // namespace

/* The trigger called name on relid: whether it exists, fires, and with what. */
bool key_changed(uint32_t relid) {
  TriggerState row = trigger_state(relid, kTrigger);
  if (!row.exists) return false;
  auto catalog = make_catalog_source(false);
  try {
    return key_attnums(row.args) != catalog->table(relid).pk;
  } catch (const Error &) {
    return false; /* (a table the catalog cannot describe now: a refresh would not help) */
  }
}

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
  state.args = trigger_args_of_hex(*rows[0][1]);
  return state;
}

/* tgargs as encode(tgargs, 'hex') shows them: each argument followed by a NUL byte. */
std::vector<std::string> trigger_args_of_hex(const std::string &hex) {
  std::vector<std::string> args;
  std::string arg;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    char c = static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    if (c == '\0') {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += c;
    }
  }
  return args;
}

/*
 * How long a change of a table's triggers waits for the table's lock.  Its
 * caller holds ectosync.watches' lock, which every watch(), unwatch() and
 * refresh after a schema change, of every role, waits for: a table that
 * its owner keeps locked in an open transaction would otherwise hold all
 * of them for as long as it likes.
 */
constexpr int kTriggerLockWaitMs = 10000;

bool lock_bounded(uint32_t relid, LOCKMODE mode) {
  if (pg_call([&] { return ConditionalLockRelationOid(relid, mode); })) return true;
  std::string wait_ms = std::to_string(kTriggerLockWaitMs);
  try {
    in_subtransaction([&] {
      pg_call([&] {
        int level = NewGUCNestLevel();
        /* (a caller's shorter lock_timeout stands) */
        if (LockTimeout == 0 || LockTimeout > kTriggerLockWaitMs)
          (void)set_config_option("lock_timeout", wait_ms.c_str(), PGC_USERSET, PGC_S_SESSION,
                                  GUC_ACTION_SAVE, true, 0, false);
        LockRelationOid(relid, mode);
        AtEOXact_GUC(true, level);
      });
    });
  } catch (const Error &e) {
    if (e.sqlstate != ERRCODE_LOCK_NOT_AVAILABLE) throw;
    return false;
  }
  return true;
}

void lock_or_fail(uint32_t relid, LOCKMODE mode, const std::string &what,
                  const std::string &holder) {
  if (lock_bounded(relid, mode)) return;
  throw Error(ERRCODE_LOCK_NOT_AVAILABLE, "ecto_sync: could not lock " + what,
              holder + "  ecto_sync waits at most " + std::to_string(kTriggerLockWaitMs / 1000) +
                  " s for it: every watch(), unwatch() and schema change of a watched table "
                  "waits meanwhile.",
              "Retry once that transaction has ended.");
}

namespace {

void lock_one(uint32_t relid, LOCKMODE mode) {
  std::string table = sql_table_name(relid);
  lock_or_fail(relid, mode, "table " + table + " to change its capture triggers",
               "Another transaction holds a lock on " + table +
                   " that a change of its triggers must wait for.");
}

}  // namespace

/*
 * The lock that the trigger statement will take, taken first with a
 * bounded wait: CREATE TRIGGER and ALTER TABLE ... ENABLE TRIGGER take
 * ShareRowExclusiveLock, DROP TRIGGER AccessExclusiveLock; for a row
 * trigger of a partitioned table, on every partition too (their clones;
 * statement triggers are not cloned).  The root first, as PostgreSQL
 * locks them.
 */
void lock_for_triggers(uint32_t relid, LOCKMODE mode, bool row) {
  lock_one(relid, mode);
  if (row)
    for (uint32_t part : partition_tree(relid)) lock_one(part, mode);
}

/*
 * ENABLE ALWAYS: capture fires in session_replication_role = replica too
 * (logical replication's apply, restores that set it); a trigger someone
 * disabled fires again (the ddl_command_end event trigger calls this after
 * ALTER TABLE ... DISABLE TRIGGER).
 */
void enable_always(uint32_t relid, const char *trigger, bool row) {
  lock_for_triggers(relid, ShareRowExclusiveLock, row);
  spi_exec("ALTER TABLE " + sql_table_name(relid) + " ENABLE ALWAYS TRIGGER " + trigger);
}

/* True when the relation still exists. */
bool relation_exists(uint32_t relid) {
  return !spi_rows("SELECT 1 FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
                   {{OIDOID, std::to_string(relid)}}, false)
              .empty();
}

namespace {

/* True when the table has the trigger called name. */
bool trigger_exists(uint32_t relid, const char *name) {
  return !spi_rows(
              "SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1"
              " AND tgname OPERATOR(pg_catalog.=) $2",
              {{OIDOID, std::to_string(relid)}, {TEXTOID, name}}, false)
              .empty();
}

}  // namespace

/* Drops the trigger called name (a row trigger: row) from table relid, if
 * it is there. */
void drop_trigger(uint32_t relid, const char *name, bool row) {
  if (!trigger_exists(relid, name)) return;
  lock_for_triggers(relid, AccessExclusiveLock, row);
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

namespace {

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

}  // namespace

/* ==== partitions ==== */

/*
 * Read with find_all_inheritors() without locks, not with
 * pg_partition_tree(), which locks every partition: a partition that its
 * owner keeps locked would hold every refresh (lock_for_triggers()).  A
 * table that is not partitioned has none (its inheritance children are
 * no partitions).
 */
std::vector<uint32_t> partition_tree(uint32_t relid) {
  List *all = pg_call([&]() -> List * {
    if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE) return NIL;
    return find_all_inheritors(relid, NoLock, nullptr);
  });
  std::vector<uint32_t> out;
  for (int i = 0; i < list_length(all); i++)
    if (list_nth_oid(all, i) != relid) out.push_back(list_nth_oid(all, i));
  pg_call([&] { list_free(all); });
  return out;
}

std::vector<uint32_t> partitions_of(uint32_t relid) {
  std::vector<uint32_t> out;
  for (uint32_t part : partition_tree(relid)) {
    char kind = pg_call([&] { return get_rel_relkind(part); });
    if (kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE) out.push_back(part);
  }
  return out;
}

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
void install_partition_triggers(uint32_t relid) {
  for (uint32_t part : partitions_of(relid)) {
    TriggerState truncate = trigger_state(part, kTruncateTrigger);
    if (!truncate.exists) {
      lock_for_triggers(part, ShareRowExclusiveLock, false);
      spi_exec("CREATE TRIGGER " + std::string(kTruncateTrigger) + " AFTER TRUNCATE ON " +
               sql_table_name(part) +
               " FOR EACH STATEMENT EXECUTE FUNCTION ectosync.capture('partition')");
    }
    /* (ALWAYS, as the root's: a subscriber's apply worker truncates under
     * session_replication_role = replica) */
    if (truncate.enabled != 'A') enable_always(part, kTruncateTrigger, false);
  }
}

/* Makes table n.relid's triggers and row say n, and the triggers fire always. */
void install(const TableNeed &n, const std::map<uint32_t, std::string> &stored) {
  std::string text = row_text(n);
  std::vector<std::string> args = trigger_args(n);
  TriggerState row = trigger_state(n.relid, kTrigger);
  TriggerState truncate = trigger_state(n.relid, kTruncateTrigger);
  bool row_right = row.exists && row.args == args;
  /* A change of the root's triggers locks the root before any partition,
   * as a write through the root does (else a write that holds the root and
   * waits for a partition would deadlock with us).  Partitions alone (one
   * attached) leave the root and its writers alone. */
  bool triggers_right =
      row_right && row.enabled == 'A' && truncate.exists && truncate.enabled == 'A';
  if (!triggers_right)
    lock_for_triggers(
        n.relid, row.exists && !row_right ? AccessExclusiveLock : ShareRowExclusiveLock, false);
  install_partition_triggers(n.relid);
  auto it = stored.find(n.relid);
  if (it != stored.end() && it->second == text && triggers_right) return;
  std::string table = sql_table_name(n.relid);
  /* (each statement that changes a trigger takes the table's lock first,
   * with a bounded wait; a stored row alone takes none) */
  if (!row_right) {
    drop_trigger(n.relid, kTrigger, true);
    lock_for_triggers(n.relid, ShareRowExclusiveLock, true);
    spi_exec(create_trigger_sql(args, table));
  }
  if (!truncate.exists) {
    lock_for_triggers(n.relid, ShareRowExclusiveLock, false);
    spi_exec(create_truncate_trigger_sql(table));
  }
  if (!row_right || row.enabled != 'A') enable_always(n.relid, kTrigger, true);
  if (!truncate.exists || truncate.enabled != 'A') enable_always(n.relid, kTruncateTrigger, false);
  /* Not captured until now (no trigger, or a disabled one): rows cached
   * before may have changed unseen, and so may values that hold the table
   * (a RELOAD marker for it; other tables and the values that do not hold
   * this one are left alone).  After CREATE TRIGGER or ALTER TABLE, which
   * waited for every writer of the table to commit: a row read after this
   * is read with a later snapshot. */
  if (!row.exists || row.enabled == 'D' || !truncate.exists || truncate.enabled == 'D')
    pg_call([&] { restart_capture(n.relid, kReloadCapture); });
  /* Its key changed (a primary key or the unique index that stands for it
   * added or dropped): values hold its rows in the old key's order, and
   * events carried the old key's columns. */
  else if (key_attnums(row.args) != n.pk)
    pg_call([&] { restart_capture(n.relid, kReloadSchema); });
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
    drop_trigger(relid, kTrigger, true);
    drop_trigger(relid, kTruncateTrigger, false);
    for (uint32_t part : partitions_of(relid)) drop_trigger(part, kTruncateTrigger, false);
  }
  spi_exec(
      "DELETE FROM ectosync.watched_tables"
      " WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
      {{TEXTOID, std::to_string(relid)}});
}

}  // namespace ectosync
