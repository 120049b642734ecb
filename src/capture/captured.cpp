/*
 * captured.cpp: whether the changes a value needs are captured.
 *
 * A value follows its tables only through the changes that the capture
 * triggers report, and those capture what the watches need (their union).
 * A value whose tables, or whose associations' key columns, no watch
 * captures would never hear of their changes: load() and hold() of such a
 * value stayed as loaded, silently.  So a value is loaded only when every
 * table of its plan is captured with its key and the columns of its
 * associations, a join table's too (needs_of(plan, false)); else 55000,
 * naming what is missing.  (A load() under ectosync.load_unwatched is a
 * read only: the value is marked "unwatched", and sync() refuses it.)  Columns are compared by
 * name, as the capture triggers name them: the attnums that ectosync.watched_tables keeps are,
 * after a restore, the dumped database's until the next refresh.  A capture that this transaction
 * made or changed does not count: if it rolled back, the value would stay held, uncaptured.
 *
 * What is captured shrinks when a watch goes (unwatch(), a dropped table)
 * or needs less: the values loaded before must hear of it.  refresh()
 * queues a RELOAD marker (why: kReloadUncaptured) at commit for each table
 * whose capture now lacks a column it had: the values holding the table
 * load again, and a value that needed it fails there, with the same error.
 * The marker comes after the commit is visible, and load() reads its seq
 * before it checks the capture: a load that saw the old capture has a
 * lower seq than the marker.
 */
#include "capture/watch.hpp"
#include "capture/watch_internal.hpp"
#include "core/event.hpp"
#include "shmem/shmem.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

#include <algorithm>
#include <map>
#include <set>

namespace ectosync {

namespace {

/* A column's name now. */
std::string column_name(uint32_t relid, int16_t attnum) {
  char *name = pg_call([&] { return get_attname(relid, attnum, true); });
  return name ? name : "?";
}

/* Whether a row's xmin (as text) is this transaction's, or a subtransaction's of it. */
bool made_here(const std::string &xmin) {
  TransactionId xid = static_cast<TransactionId>(std::stoul(xmin));
  return pg_call([&] { return TransactionIdIsCurrentTransactionId(xid); });
}

/*
 * The capture of relids (of every watched table: empty), of the tables
 * that have a capture trigger.  Inside an SpiScope.
 */
std::map<uint32_t, CapturedColumns> captured_columns(const std::vector<uint32_t> &relids) {
  std::map<uint32_t, CapturedColumns> out;
  for (const auto &row :
       spi_rows("SELECT w.relid::pg_catalog.oid, pg_catalog.encode(t.tgargs, 'hex'),"
                " w.xmin::pg_catalog.text, t.xmin::pg_catalog.text FROM ectosync.watched_tables w"
                " JOIN pg_catalog.pg_trigger t ON t.tgrelid OPERATOR(pg_catalog.=)"
                " w.relid::pg_catalog.oid AND t.tgname OPERATOR(pg_catalog.=) $2"
                /* (ecto_sync's own, firing: the table's owner may have given
                 * its name to a trigger of its own) */
                " AND t.tgfoid OPERATOR(pg_catalog.=) 'ectosync.capture()'::pg_catalog.regprocedure"
                " AND t.tgenabled OPERATOR(pg_catalog.=) 'A'"
                " WHERE pg_catalog.cardinality($1::pg_catalog.oid[]) OPERATOR(pg_catalog.=) 0"
                " OR w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])",
                {{TEXTOID, pg_int_array(relids)}, {TEXTOID, kTrigger}}, false)) {
    uint32_t relid = static_cast<uint32_t>(std::stoul(*row[0]));
    CapturedColumns c;
    c.uncommitted = made_here(*row[2]) || made_here(*row[3]);
    /* (trigger_args(): the key's width, then "attnum:name" per column; a
     * trigger of 0.1.0, restored from its dump, names attnums only.
     * Arguments of another form capture nothing of use.) */
    std::vector<std::string> args = trigger_args_of_hex(*row[1]);
    try {
      size_t width = args.empty() ? 0 : std::stoul(args[0]);
      for (size_t i = 1; i < args.size(); i++) {
        size_t colon = args[i].find(':');
        std::string name = colon == std::string::npos
                               ? column_name(relid, static_cast<int16_t>(std::stoi(args[i])))
                               : args[i].substr(colon + 1);
        if (i <= width)
          c.key.push_back(name);
        else
          c.others.insert(name);
      }
    } catch (const std::logic_error &) { /* std::stoul, std::stoi */
      continue;
    }
    out[relid] = c;
  }
  return out;
}

/* What want needs and have lacks, in words; empty when nothing. */
std::string gap(const CapturedColumns &have, const TableNeed &want) {
  std::string table = table_name(want.relid);
  std::vector<std::string> key;
  for (int16_t attnum : want.pk) key.push_back(column_name(want.relid, attnum));
  if (key != have.key) return "Table " + table + " is captured under another key than its key now.";
  for (int16_t attnum : want.tracked) {
    std::string name = column_name(want.relid, attnum);
    if (!have.others.count(name) &&
        std::find(have.key.begin(), have.key.end(), name) == have.key.end())
      return "Column " + name + " of table " + table + " is not captured.";
  }
  return "";
}

}  // namespace

std::map<uint32_t, CapturedColumns> captured_now() {
  return captured_columns({});
}

/* The tables captured before whose capture (after) lacks a column it had. */
std::vector<uint32_t> capture_lost(const std::map<uint32_t, CapturedColumns> &before,
                                   const Needs &after) {
  std::vector<uint32_t> out;
  for (const auto &[relid, had] : before) {
    auto now = after.find(relid);
    bool lost = now == after.end();
    if (!lost) {
      std::set<std::string> columns;
      for (int16_t attnum : now->second.pk) columns.insert(column_name(relid, attnum));
      for (int16_t attnum : now->second.tracked) columns.insert(column_name(relid, attnum));
      for (const std::string &name : had.key) lost = lost || !columns.count(name);
      for (const std::string &name : had.others) lost = lost || !columns.count(name);
    }
    if (lost) out.push_back(relid);
  }
  return out;
}

void check_captured(const Plan &plan) {
  Needs wanted = needs_of(plan, false);
  std::vector<uint32_t> relids;
  for (const auto &[relid, need] : wanted) relids.push_back(relid);
  std::map<uint32_t, CapturedColumns> have;
  {
    SpiScope spi;
    have = captured_columns(relids);
  }
  for (const auto &[relid, want] : wanted) {
    auto it = have.find(relid);
    std::string missing = it == have.end()
                              ? "No watch captures the changes of table " + table_name(relid) + "."
                              : gap(it->second, want);
    if (missing.empty() && !it->second.uncommitted) continue;
    std::string root = table_name(plan.root->table.relid);
    if (missing.empty())
      throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  "a value of " + root + " with assocs " + plan.spec + " is not watched yet",
                  "This transaction made or changed the capture of table " + table_name(relid) +
                      ": if it rolled back, the value would not follow those changes.",
                  "Commit the watch() first.");
    char *table = pg_call([&] { return quote_literal_cstr(root.c_str()); });
    char *spec = pg_call([&] { return quote_literal_cstr(plan.spec.c_str()); });
    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "a value of " + root + " with assocs " + plan.spec + " is not watched",
                missing + " The value would not follow those changes.",
                "Its tables' owner watches it first: SELECT ectosync.watch(" + std::string(table) +
                    ", " + spec + ").");
  }
}

}  // namespace ectosync
