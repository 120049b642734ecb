/*
 * captured.cpp: whether the changes a value needs are captured.
 *
 * A value follows its tables only through the changes that the capture
 * triggers report, and those capture what the watches need
 * (ectosync.watched_tables, their union).  A value whose tables, or whose
 * associations' key columns, no watch captures would never hear of their
 * changes: load() and hold() of such a value stayed as loaded, silently.
 * So a value is loaded only when every table of its plan is captured with
 * its key, the columns of its associations and its join tables' ends
 * (needs_of(plan, false)); else 55000, naming what is missing.  (A load()
 * under ectosync.load_unwatched is a read only, and is not refused.)
 *
 * What is captured shrinks when a watch goes (unwatch(), a dropped table)
 * or needs less: the values loaded before must hear of it.  refresh()
 * queues a RELOAD marker (why: kReloadUncaptured) at commit for each table
 * whose capture now lacks something it had: the values holding the table
 * load again, and a value that needed it fails there, with the same error.
 * The marker comes after the commit is visible, and load() reads its seq
 * before it checks the capture: a load that saw the old capture has a
 * lower seq than the marker.
 */
#include "capture/watch.hpp"
#include "capture/watch_internal.hpp"
#include "capture/xact_buffer.hpp"
#include "core/assoc.hpp"
#include "core/event.hpp"
#include "core/json.hpp"
#include "shmem/shmem.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

#include <algorithm>
#include <map>
#include <set>

namespace ectosync {

namespace {

/* Whether have captures all that want needs (the same database's attnums). */
bool covers(const TableNeed &have, const TableNeed &want) {
  if (have.pk != want.pk || (want.is_join && !have.is_join)) return false;
  for (int16_t attnum : want.tracked)
    if (!have.tracked.count(attnum)) return false;
  for (const JoinTarget &target : want.join_targets)
    if (std::find(have.join_targets.begin(), have.join_targets.end(), target) ==
        have.join_targets.end())
      return false;
  return true;
}

/*
 * What a table's capture captures, by column names: its trigger names
 * its columns, while the attnums and oids that ectosync.watched_tables
 * keeps are, after a restore, the dumped database's until the next
 * refresh.
 */
struct CapturedColumns {
  std::vector<std::string> key;
  std::set<std::string> others;
  bool is_join = false;
  std::vector<std::vector<std::string>> join_ends; /* each end's referenced columns */
};

/* The capture of relids, of those that have a capture trigger. */
std::map<uint32_t, CapturedColumns> captured_columns(const std::vector<uint32_t> &relids) {
  std::string list;
  for (uint32_t relid : relids) list += (list.empty() ? "" : ",") + std::to_string(relid);
  std::map<uint32_t, CapturedColumns> out;
  SpiScope spi;
  for (const auto &row : spi_rows(
           "SELECT w.relid::pg_catalog.oid, w.is_join, w.join_targets::pg_catalog.text,"
           " pg_catalog.encode(t.tgargs, 'hex') FROM ectosync.watched_tables w"
           " JOIN pg_catalog.pg_trigger t ON t.tgrelid OPERATOR(pg_catalog.=)"
           " w.relid::pg_catalog.oid AND t.tgname OPERATOR(pg_catalog.=) $2"
           " WHERE w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)"
           " ANY (('{' OPERATOR(pg_catalog.||) $1 OPERATOR(pg_catalog.||) '}')::pg_catalog.oid[])",
           {{TEXTOID, list}, {TEXTOID, kTrigger}}, false)) {
    CapturedColumns &c = out[static_cast<uint32_t>(std::stoul(*row[0]))];
    c.is_join = *row[1] == "t";
    for (const Json &end : parse_spec(*row[2]).items) {
      c.join_ends.emplace_back();
      if (const Json *names = end.find("target_columns"))
        for (const Json &name : names->items) c.join_ends.back().push_back(name.text);
    }
    /* (trigger_args(): the key's width, then "attnum:name" per column) */
    std::vector<std::string> args = trigger_args_of_hex(*row[3]);
    size_t width = args.empty() ? 0 : std::stoul(args[0]);
    for (size_t i = 1; i < args.size(); i++) {
      std::string name = args[i].substr(args[i].find(':') + 1);
      if (i <= width)
        c.key.push_back(name);
      else
        c.others.insert(name);
    }
  }
  return out;
}

/* A column's name now. */
std::string column_name(uint32_t relid, int16_t attnum) {
  char *name = pg_call([&] { return get_attname(relid, attnum, true); });
  return name ? name : "?";
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
  bool ends = want.join_targets.empty() || have.is_join;
  for (const JoinTarget &target : want.join_targets)
    ends = ends && std::find(have.join_ends.begin(), have.join_ends.end(), target.target_columns) !=
                       have.join_ends.end();
  if (!ends) return "Table " + table + " is not captured as the join table that the value needs.";
  return "";
}

}  // namespace

/* What the capture triggers capture now of relids (of all tables: empty). */
Needs captured_needs(const std::vector<uint32_t> &relids) {
  std::string list;
  for (uint32_t relid : relids) list += (list.empty() ? "" : ",") + std::to_string(relid);
  auto rows = spi_rows(
      "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('relid', relid::pg_catalog.oid,"
      " 'pk', pk_attnums, 'tracked', tracked_attnums, 'is_join', is_join,"
      " 'join_targets', join_targets))::pg_catalog.text FROM ectosync.watched_tables"
      " WHERE $1 OPERATOR(pg_catalog.=) '' OR relid::pg_catalog.oid OPERATOR(pg_catalog.=)"
      " ANY (('{' OPERATOR(pg_catalog.||) $1 OPERATOR(pg_catalog.||) '}')::pg_catalog.oid[])",
      {{TEXTOID, list}}, false);
  return rows.at(0)[0] ? parse_needs(*rows.at(0)[0]) : Needs{};
}

/* The tables of before whose capture now (after) lacks something it had. */
std::vector<uint32_t> capture_lost(const Needs &before, const Needs &after) {
  std::vector<uint32_t> out;
  for (const auto &[relid, had] : before) {
    auto now = after.find(relid);
    if (now == after.end() || !covers(now->second, had)) out.push_back(relid);
  }
  return out;
}

void check_captured(const Plan &plan) {
  Needs wanted = needs_of(plan, false);
  std::vector<uint32_t> relids;
  for (const auto &[relid, need] : wanted) relids.push_back(relid);
  std::map<uint32_t, CapturedColumns> have = captured_columns(relids);
  for (const auto &[relid, want] : wanted) {
    auto it = have.find(relid);
    std::string missing = it == have.end()
                              ? "No watch captures the changes of table " + table_name(relid) + "."
                              : gap(it->second, want);
    if (missing.empty()) continue;
    std::string root = table_name(plan.root->table.relid);
    std::string call = pg_call([&] {
      return std::string("SELECT ectosync.watch(") + quote_literal_cstr(root.c_str()) + ", " +
             quote_literal_cstr(plan.spec.c_str()) + ")";
    });
    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "a value of " + root + " with assocs " + plan.spec + " is not watched",
                missing + " The value would not follow those changes.",
                "Its tables' owner watches it first: " + call + ".");
  }
}

}  // namespace ectosync
