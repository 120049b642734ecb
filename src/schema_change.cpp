/*
 * schema_change.cpp: the ddl_command_end event trigger that follows ALTER
 * TABLE on watched tables, so that no value stays silently stale after a
 * migration.
 *
 * A value holds rows as to_jsonb() renders them: a column added, dropped,
 * renamed or retyped, or the table renamed or moved, changes every row of
 * the table, while events come only for the rows that writers touch.  So
 * for a watched table whose rows change shape, the trigger queues a RELOAD
 * marker (why: kReloadSchema): the values that hold the table reload whole
 * ("reloaded": "Schema change of ..."; ZE001 for sync), the others are left
 * alone, and the marker's seq is the table's cache floor (rows cached in
 * the old shape miss).  It is queued while ALTER TABLE still holds its
 * lock: a reload or a worker read that follows waits for the commit and
 * sees the new shape; one that came before has a lower seq.
 *
 * Every ALTER TABLE of a watched table also refreshes the watches: the
 * capture triggers name columns (a rename rewrites them) and fire always
 * (ALTER TABLE ... DISABLE TRIGGER leaves ecto_sync's enabled: a disabled
 * capture trigger would lose changes silently).
 */
#include "catalog_internal.hpp"
#include "event.hpp"
#include "shared.hpp"
#include "watch.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "nodes/parsenodes.h"

PG_FUNCTION_INFO_V1(ectosync_on_ddl_command_end);
}

#include <set>

namespace ectosync {

namespace {

/* Whether an ALTER TABLE subcommand changes what to_jsonb() makes of a row. */
bool reshapes(AlterTableType type) {
  switch (type) {
    case AT_AddColumn:
    case AT_AddColumnRecurse:
    case AT_AddColumnToView:
    case AT_DropColumn:
    case AT_DropColumnRecurse:
    case AT_AlterColumnType:
      return true;
    default:
      return false;
  }
}

/* Whether the statement changes the shape of its tables' rows, or their names. */
bool statement_reshapes(Node *parsetree) {
  if (IsA(parsetree, RenameStmt)) {
    ObjectType type = castNode(RenameStmt, parsetree)->renameType;
    return type == OBJECT_COLUMN || type == OBJECT_TABLE;
  }
  if (IsA(parsetree, AlterObjectSchemaStmt)) return true;
  if (!IsA(parsetree, AlterTableStmt)) return false;
  ListCell *cell;
  foreach (cell, castNode(AlterTableStmt, parsetree)->cmds)
    if (reshapes(lfirst_node(AlterTableCmd, cell)->subtype)) return true;
  return false;
}

/* The watched tables among those the statement changed. */
std::set<uint32_t> watched_tables_changed() {
  std::set<uint32_t> out;
  SpiScope spi;
  for (const auto &row : spi_rows(
           "SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
           " JOIN ectosync.watched_tables w ON w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)"
           " c.objid WHERE c.classid OPERATOR(pg_catalog.=)"
           " 'pg_catalog.pg_class'::pg_catalog.regclass",
           {}, true))
    out.insert(static_cast<uint32_t>(std::stoul(*row[0])));
  return out;
}

void follow_alter_table(Node *parsetree) {
  if (refreshing_watches()) return;
  std::set<uint32_t> tables = watched_tables_changed();
  if (tables.empty()) return;
  if (statement_reshapes(parsetree))
    for (uint32_t relid : tables) pg_call([&] { restart_capture(relid, kReloadSchema); });
  refresh_watches(false);
}

}  // namespace

}  // namespace ectosync

using namespace ectosync;

/* ectosync._on_ddl_command_end() RETURNS event_trigger, ON ddl_command_end WHEN TAG IN ('ALTER TABLE') */
extern "C" Datum ectosync_on_ddl_command_end(PG_FUNCTION_ARGS) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("ectosync._on_ddl_command_end() must be called as an event trigger")));
  Node *parsetree = ((EventTriggerData *)fcinfo->context)->parsetree;
  pg_entry([&] { follow_alter_table(parsetree); });
  PG_RETURN_VOID();
}
