/*
 * registry.cpp: the session's held values by role and name (held_internal.hpp), the
 * memory they live in, and what finds, copies and forgets them.
 */
#include "value/catalog.hpp"
#include "value/diff.hpp"
#include "held/held_shared.hpp"
#include "core/interest.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem.hpp"
#include "value/sync.hpp"
#include "held/held_internal.hpp"

extern "C" {
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "commands/async.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rls.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "utils/tuplestore.h"
}

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace ectosync {

namespace {

MemoryContext held_context = nullptr;

MemoryContext held_memory() {
  if (!held_context)
    held_context = pg_call([] {
      return AllocSetContextCreate(TopMemoryContext, "ecto_sync held values",
                                   ALLOCSET_DEFAULT_SIZES);
    });
  return held_context;
}

}  // namespace

/* The session's values by role and name; allocated once, lives as long as the backend. */
HeldValues &held_values() {
  static auto *values = new HeldValues();
  return *values;
}

HeldValues::iterator find_own(const std::string &name) {
  return held_values().find(HeldName{GetUserId(), name});
}

OwnValues own_values() {
  Oid role = GetUserId();
  auto &values = held_values();
  auto first = values.lower_bound(HeldName{role, {}});
  auto last = role == PG_UINT32_MAX ? values.end() : values.lower_bound(HeldName{role + 1, {}});
  return OwnValues{first, last};
}

static uint64_t layout_changes = 0, touches = 0;

uint64_t held_layout() {
  return layout_changes;
}

void held_layout_changed() {
  layout_changes++;
}

uint64_t held_touches() {
  return touches;
}

/* A copy of j in context (held_context by default). */
Jsonb *keep(const Jsonb *j, MemoryContext context) {
  if (!j) return nullptr;
  if (!context) context = held_memory();
  return pg_call([&] {
    void *p = MemoryContextAlloc(context, VARSIZE(j));
    memcpy(p, j, VARSIZE(j));
    return static_cast<Jsonb *>(p);
  });
}

/*
 * A context for a held value (its head and parts), or for what one
 * changes() call makes.
 */
MemoryContext value_context() {
  MemoryContext parent = held_memory();
  return pg_call(
      [&] { return AllocSetContextCreate(parent, "ecto_sync held value", ALLOCSET_SMALL_SIZES); });
}

std::vector<TableHome> table_homes(const std::vector<uint32_t> &tables) {
  std::vector<TableHome> homes;
  for (uint32_t relid : tables)
    homes.push_back(pg_call([&] {
      TableHome home;
      HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
      if (!HeapTupleIsValid(tuple)) return home;
      home.owner = ((Form_pg_class)GETSTRUCT(tuple))->relowner;
      home.schema = ((Form_pg_class)GETSTRUCT(tuple))->relnamespace;
      ReleaseSysCache(tuple);
      return home;
    }));
  return homes;
}

const Plan &held_plan(const Held &h) {
  const Plan &plan = resolve_plan(h.relid, h.assocs);
  std::vector<uint32_t> tables = plan.tables();
  /* (asked at each call while a migration made the tables again: a
   * syscache lookup per table) */
  if (tables == h.tables) return plan;
  /* A table of it dropped, and maybe made again under its name by a
   * migration: that is another table.  The value holds the old one's rows,
   * and its interest names the old oid, so that neither the new table's
   * changes nor the marker of its capture would reach it. */
  bool dropped = false;
  for (const TableHome &home : table_homes(h.tables)) dropped = dropped || home.owner == InvalidOid;
  bool elsewhere = !dropped && table_homes(tables) != h.homes;
  /* (a value of its own is loaded again: changes_made_in(); a shared one
   * is the shared value of the old tables, which their holders share) */
  if (!dropped && !elsewhere && h.shared < 0) return plan;
  char *root = pg_call([&] { return get_rel_name(h.relid); });
  throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
              "ecto_sync: the tables of a held value of " + std::string(root ? root : "?") +
                  " are no longer those it was held for",
              dropped ? "A table of it was dropped (and maybe made again under its name): the "
                        "value cannot follow the table its assocs name now."
              : elsewhere
                  ? "Its assocs name a table of another owner or schema than the one they "
                    "named when it was held (a schema renamed, and its name given to "
                    "another schema)."
                  : "Its assocs lead to other tables than when it was held (a table renamed, "
                    "or a foreign key made again), and it is shared with the sessions that "
                    "hold it as it was.",
              "Release the value and hold it again.");
}

void forget(Held &h) {
  held_layout_changed();
  detach_entry(h);
  held_share_detach(std::exchange(h.shared, -1)); /* (a forget() again: once) */
  pg_call([&] {
    for (Jsonb *j : {h.assocs, h.filter})
      if (j) pfree(j);
    if (h.context) MemoryContextDelete(h.context);
  });
  h = Held();
}

int shared_unnamed = -1;

/* At exit (before_shmem_exit): this backend no longer holds its shared
 * values (nor their turns).  Detaching cannot fail; nothing may escape
 * into PostgreSQL. */
void detach_shared_at_exit(int, Datum) {
  try {
    held_share_detach(std::exchange(shared_unnamed, -1));
    for (auto &entry : held_values()) {
      held_share_detach(entry.second.shared);
      entry.second.shared = -1;
    }
  } catch (...) {
  }
}

/* A text argument as a string (detoasted by the caller before any C++ object exists). */
std::string text_string(const text *t) {
  return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* The current role's value under name. */
Held &find_held(const std::string &name) {
  touches++;
  auto it = find_own(name);
  if (it == held_values().end())
    throw Error(ERRCODE_UNDEFINED_OBJECT,
                "ecto_sync: no value is held under the name \"" + name + "\"", "",
                "Call ectosync.hold() first; held values last as long as the session, and "
                "each role has names of its own.");
  return it->second;
}

uint64_t value_seq(const Jsonb *value) {
  std::optional<jb::Elem> seq = jb::View(value).get("seq");
  if (!seq || !seq->is_numeric()) return 0;
  return pg_call([&] {
    return static_cast<uint64_t>(
        DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(seq->numeric()))));
  });
}

}  // namespace ectosync
