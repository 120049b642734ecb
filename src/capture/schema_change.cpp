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
 * A column renamed or retyped also refreshes the watches (the capture
 * triggers name their columns; a key may change kind), and ALTER TABLE
 * ... DISABLE TRIGGER leaves ecto_sync's capture triggers enabled: a
 * disabled one would lose changes silently.
 */
#include "value/catalog_internal.hpp"
#include "core/event.hpp"
#include "shmem/shmem.hpp"
#include "capture/watch.hpp"
#include "capture/xact_buffer.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "nodes/parsenodes.h"
}

#include <set>

namespace ectosync {

namespace {

/* What a statement does to its tables, as far as ecto_sync cares. */
struct Effects {
  bool reshapes = false;         /* rows look different: values reload */
  bool renames_columns = false;  /* capture triggers name columns: rebuild them */
  bool toggles_triggers = false; /* ENABLE/DISABLE TRIGGER: keep capture on */
};

/* One ALTER TABLE subcommand's effects. */
void add_effects(AlterTableType type, Effects &effects) {
  switch (type) {
    case AT_AddColumn:
    case AT_AddColumnRecurse:
    case AT_DropColumn:
    case AT_DropColumnRecurse:
      effects.reshapes = true;
      break;
    case AT_AlterColumnType: /* a key may change kind: the watches resolve again */
      effects.reshapes = effects.renames_columns = true;
      break;
    case AT_EnableTrig:
    case AT_EnableAlwaysTrig:
    case AT_EnableReplicaTrig:
    case AT_EnableTrigAll:
    case AT_EnableTrigUser:
    case AT_DisableTrig:
    case AT_DisableTrigAll:
    case AT_DisableTrigUser:
      effects.toggles_triggers = true;
      break;
    default: /* constraints, indexes, storage, ownership, ...: nothing */
      break;
  }
}

/*
 * The statement's effects.  Constraints and indexes change nothing here:
 * a restore adds a watched table's keys after its rows and its watches'
 * rows, when the watches cannot resolve yet.
 */
Effects effects_of(Node *parsetree) {
  Effects effects;
  if (IsA(parsetree, RenameStmt)) {
    ObjectType type = castNode(RenameStmt, parsetree)->renameType;
    effects.reshapes = type == OBJECT_COLUMN || type == OBJECT_TABLE;
    effects.renames_columns = type == OBJECT_COLUMN;
  } else if (IsA(parsetree, AlterObjectSchemaStmt)) {
    effects.reshapes = true; /* the value's "table" names the schema */
  } else if (IsA(parsetree, AlterTableStmt)) {
    ListCell *cell;
    foreach (cell, castNode(AlterTableStmt, parsetree)->cmds)
      add_effects(lfirst_node(AlterTableCmd, cell)->subtype, effects);
  }
  return effects;
}

/* The watched tables among those the statement changed. */
std::set<uint32_t> watched_tables_changed() {
  std::set<uint32_t> out;
  SpiScope spi;
  for (const auto &row :
       spi_rows("SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
                " JOIN ectosync.watched_tables w ON w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)"
                " c.objid WHERE c.classid OPERATOR(pg_catalog.=)"
                " 'pg_catalog.pg_class'::pg_catalog.regclass",
                {}, true))
    out.insert(static_cast<uint32_t>(std::stoul(*row[0])));
  return out;
}

void follow_alter_table(Node *parsetree) {
  if (refreshing_watches()) return;
  Effects effects = effects_of(parsetree);
  if (!effects.reshapes && !effects.renames_columns && !effects.toggles_triggers) return;
  std::set<uint32_t> tables = watched_tables_changed();
  if (effects.reshapes)
    for (uint32_t relid : tables) {
      pg_call([&] { restart_capture(relid, kReloadSchema); });
      note_changed_wholesale(relid);
    }
  if (effects.toggles_triggers)
    for (uint32_t relid : tables) keep_capture_enabled(relid);
  if (effects.renames_columns && !tables.empty()) refresh_watches();
}

}  // namespace

}  // namespace ectosync

using namespace ectosync;

/* ectosync._on_ddl_command_end() RETURNS event_trigger, ON ddl_command_end WHEN TAG IN ('ALTER
 * TABLE') */
ECTOSYNC_FUNCTION(ectosync_on_ddl_command_end) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("ectosync._on_ddl_command_end() must be called as an event trigger")));
  Node *parsetree = ((EventTriggerData *)fcinfo->context)->parsetree;
  follow_alter_table(parsetree);
  PG_RETURN_VOID();
}
