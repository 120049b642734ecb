/*
 * watch_needs.cpp: what a watch needs of each table of its plan (the
 * primary key, the other key columns to capture, join-table targets), and
 * their JSON forms in the extension's tables (watch.cpp's header comment).
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

/* ==== what a watch needs of each table ==== */

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

/*
 * The columns whose old values make patching and waking node's rows more
 * precise, into its table's need: where they are not captured, the worker
 * and sync() assume that a change may matter.
 */
void add_precision_needs(const PlanNode &node, TableNeed &own, bool root) {
  /* Its foreign keys: which filtered values (a user's own rows) a change
   * concerns (interest.hpp). */
  own.tracked.insert(node.table.fk_attnums.begin(), node.table.fk_attnums.end());
  /* A root window's first order column: a held value's interest tells
   * rows that sort after its last row by it (held_interest.cpp).  (Rows of
   * a nested window enter through their parents' keys.) */
  if (root && node.query.windowed() && node.query.ordered())
    own.tracked.insert(node.query.order.front().column.attnum);
  /* The root list's where: its guards (held_interest.cpp) tell the rows
   * that stay outside it. */
  if (root)
    for (const Condition &c : node.query.where)
      if (c.op != CmpOp::Or) own.tracked.insert(c.column.attnum);
  /* A window with an offset, at any level: sync() tells by a row's old
   * order columns whether it sorted ahead of the window (patch_window.cpp). */
  if (node.query.offset > 0)
    for (const OrderKey &k : node.query.order) own.tracked.insert(k.column.attnum);
}

/* The needs of one plan node and everything under it (needs_of()). */
void collect_needs(const PlanNode &node, Needs &needs, bool precise, bool root = false) {
  TableNeed &own = need_of(needs, node.table);
  if (precise) add_precision_needs(node, own, root);
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
    collect_needs(*a.target, needs, precise);
  }
}

}  // namespace

/* Needs of a plan; the primary key is never "tracked" on top. */
Needs needs_of(const Plan &plan, bool precise) {
  Needs needs;
  collect_needs(*plan.root, needs, precise, true);
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

namespace {

/* ==== their JSON forms ==== */

}  // namespace

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

namespace {

/* A JSON array of numbers as attnums. */
std::vector<int16_t> ints_of(const Json *array) {
  std::vector<int16_t> out;
  if (array)
    for (const auto &item : array->items) out.push_back(static_cast<int16_t>(std::stoi(item.text)));
  return out;
}

}  // namespace

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

}  // namespace ectosync
