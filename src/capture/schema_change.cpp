/*
 * schema_change.cpp: the ddl_command_end event trigger that follows ALTER
 * TABLE on watched tables, and CREATE or ALTER POLICY, so that no value
 * stays silently stale after a migration.
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
 * A foreign key added to a watched table queues a Schema marker at commit:
 * dropped in a statement before (the watch stays, captured.cpp) and added
 * on other columns, the association of its name groups the rows by those.
 * A column renamed or retyped also refreshes the watches (the capture
 * triggers name their columns; a key may change kind), and ALTER TABLE
 * ... DISABLE TRIGGER leaves ecto_sync's capture triggers enabled: a
 * disabled one would lose changes silently.
 *
 * Which rows a role sees changes wholesale with a table's policies, its row
 * level security (ENABLE, DISABLE, FORCE, NO FORCE) and its owner: that
 * queues a RELOAD marker at commit (why: kReloadSecurity) for the table if
 * it is watched, and for the watched tables whose policies read it
 * (policy_sources.cpp); the policy triggers are made again.  DROP POLICY
 * comes here through the sql_drop event trigger.  So does, with why
 * kReloadPolicy, CREATE OR REPLACE of a view or function that a watched
 * table's policies reach.
 */
#include "value/catalog_internal.hpp"
#include "core/event.hpp"
#include "shmem/shmem.hpp"
#include "capture/watch.hpp"
#include "capture/watch_internal.hpp"
#include "capture/xact_buffer.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "nodes/parsenodes.h"
}

#include <set>

namespace ectosync {

namespace {

/* What a statement does to its tables, as far as ecto_sync cares. */
struct Effects {
  bool secures = false;          /* row level security or the owner changed: values reload */
  bool reshapes = false;         /* rows look different: values reload */
  bool renames_columns = false;  /* capture triggers name columns: rebuild them */
  bool renames_table = false;    /* policy triggers name tables: rebuild them */
  bool repartitions = false;     /* ATTACH, DETACH PARTITION, [NO] INHERIT: new children */
  bool toggles_triggers = false; /* ENABLE/DISABLE TRIGGER: keep capture on */
  bool rekeys = false;           /* a key or foreign key may change: the watches resolve again */
  bool regroups = false;         /* a foreign key added: an association may take other columns */
};

/* One ALTER TABLE subcommand's effects. */
void add_effects(const AlterTableCmd *cmd, Effects &effects) {
  switch (cmd->subtype) {
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
    case AT_EnableRowSecurity:
    case AT_DisableRowSecurity:
    case AT_ForceRowSecurity:
    case AT_NoForceRowSecurity:
    case AT_ChangeOwner: /* the owner sees every row (without FORCE) */
      effects.secures = true;
      break;
    case AT_AttachPartition:
    case AT_DetachPartition:
    case AT_DetachPartitionFinalize:
    case AT_AddInherit:
    case AT_DropInherit:
      effects.repartitions = true;
      break;
    case AT_AddConstraint:
    case AT_AddConstraintRecurse:
      effects.rekeys = true;
      /* A foreign key dropped in a statement before and added on other
       * columns now: the association of its name groups the rows by
       * these, and values hold them grouped by the old ones. */
      effects.regroups =
          effects.regroups || (cmd->def && IsA(cmd->def, Constraint) &&
                               castNode(Constraint, cmd->def)->contype == CONSTR_FOREIGN);
      break;
    case AT_DropConstraint:
    case AT_DropConstraintRecurse:
    case AT_AddIndex:
    case AT_AddIndexConstraint:
    case AT_ReplicaIdentity:
    case AT_SetNotNull:
    case AT_DropNotNull:
      /* (when the key changed: install() queues a marker) */
      effects.rekeys = true;
      break;
    default: /* storage, statistics, ...: nothing */
      break;
  }
}

/*
 * The statement's effects.  Constraints and indexes make the watches
 * resolve again only when a table's key changed (a restore adds a watched
 * table's keys after its rows and its watches' rows, when they cannot
 * resolve yet); the table gets a marker then (triggers.cpp's install()):
 * its events carried the old key's columns.
 */
Effects effects_of(Node *parsetree) {
  Effects effects;
  if (IsA(parsetree, RenameStmt)) {
    /* (PostgreSQL renames a table through ALTER INDEX, ALTER VIEW, ALTER
     * MATERIALIZED VIEW, ALTER SEQUENCE or ALTER FOREIGN TABLE too, and its
     * columns through the last two: whether it was one, the tables that
     * the statement changed say) */
    ObjectType type = castNode(RenameStmt, parsetree)->renameType;
    bool relation = type == OBJECT_TABLE || type == OBJECT_INDEX || type == OBJECT_VIEW ||
                    type == OBJECT_MATVIEW || type == OBJECT_SEQUENCE ||
                    type == OBJECT_FOREIGN_TABLE;
    effects.reshapes = type == OBJECT_COLUMN || relation;
    effects.renames_columns = type == OBJECT_COLUMN;
    effects.renames_table = relation;
  } else if (IsA(parsetree, AlterObjectSchemaStmt)) {
    effects.reshapes = true; /* the value's "table" names the schema */
    effects.renames_table = true;
  } else if (IsA(parsetree, AlterTableStmt)) {
    ListCell *cell;
    foreach (cell, castNode(AlterTableStmt, parsetree)->cmds)
      add_effects(lfirst_node(AlterTableCmd, cell), effects);
  }
  return effects;
}

/* The oids in the first column of sql's rows (read_only: the statement's snapshot). */
std::set<uint32_t> oids_of(const char *sql, bool read_only) {
  std::set<uint32_t> out;
  SpiScope spi;
  for (const auto &row : spi_rows(sql, {}, read_only))
    out.insert(static_cast<uint32_t>(std::stoul(*row[0])));
  return out;
}

/* The tables of the policies the statement made or altered. */
std::set<uint32_t> tables_of_policies_changed() {
  /* (a new snapshot: one of the statement's sees no new policy) */
  return oids_of(
      "SELECT DISTINCT p.polrelid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
      " JOIN pg_catalog.pg_policy p ON p.oid OPERATOR(pg_catalog.=) c.objid"
      " WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass",
      false);
}

/* The tables (of any role) the statement changed. */
std::set<uint32_t> tables_changed() {
  return oids_of(
      "SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
      " WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
      true);
}

/*
 * The watched tables among those the statement changed, and among their
 * descendants: an ALTER TABLE of an inheritance parent (or of a
 * partitioned table, of a partition that is watched) changes its children
 * too, and pg_event_trigger_ddl_commands() names the parent alone.
 */
std::set<uint32_t> watched_tables_changed() {
  return oids_of(
      "WITH RECURSIVE changed AS ("
      "  SELECT c.objid AS relid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
      "   WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
      "  UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i"
      "   JOIN changed ch ON i.inhparent OPERATOR(pg_catalog.=) ch.relid)"
      " SELECT DISTINCT ch.relid FROM changed ch JOIN ectosync.watched_tables w"
      " ON w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ch.relid",
      true);
}

/*
 * The partitions (at any depth) of watched tables among those the
 * statement changed, each with its watched table: their capture triggers
 * are clones of the watched table's, which report their rows under it.
 */
std::vector<std::pair<uint32_t, uint32_t>> watched_partitions_changed() {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  SpiScope spi;
  for (const auto &row :
       spi_rows("SELECT DISTINCT c.objid, w.relid::pg_catalog.oid"
                " FROM pg_catalog.pg_event_trigger_ddl_commands() c"
                " CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(c.objid) a"
                " JOIN ectosync.watched_tables w ON w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)"
                " a.relid::pg_catalog.oid"
                " WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
                " AND a.relid::pg_catalog.oid OPERATOR(pg_catalog.<>) c.objid",
                {}, true))
    out.emplace_back(static_cast<uint32_t>(std::stoul(*row[0])),
                     static_cast<uint32_t>(std::stoul(*row[1])));
  return out;
}

/*
 * tables, and the tables they are children of now: a table that joins an
 * inheritance tree of a policy source has no trigger of its own yet, and
 * its parent's name the dependents.  (A new snapshot: the statement's
 * pg_inherits rows.)
 */
std::set<uint32_t> with_parents(std::set<uint32_t> tables) {
  if (tables.empty()) return tables;
  std::string list;
  for (uint32_t relid : tables) list += (list.empty() ? "" : ",") + std::to_string(relid);
  std::string sql =
      "SELECT inhparent FROM pg_catalog.pg_inherits WHERE inhrelid OPERATOR(pg_catalog.=) ANY ('{" +
      list + "}'::pg_catalog.oid[])";
  for (uint32_t parent : oids_of(sql.c_str(), false)) tables.insert(parent);
  return tables;
}

/* The watched tables whose policies read one of tables (policy_sources.cpp). */
std::set<uint32_t> dependents_of(const std::set<uint32_t> &tables) {
  std::set<uint32_t> out;
  SpiScope spi;
  for (uint32_t relid : tables)
    for (uint32_t dependent : policy_dependents(relid)) out.insert(dependent);
  return out;
}

/* A RELOAD marker for each of tables when this transaction commits. */
void reload_at_commit(const std::set<uint32_t> &tables, uint16_t why) {
  pg_call([] { attach_database_slot(); });
  for (uint32_t relid : tables) remember_reload(relid, why);
}

/*
 * tables' rows look otherwise from this transaction's commit on, while no
 * row changed (a schema renamed, a type altered): a RELOAD marker (Schema
 * change) for each at commit, and this transaction may not read them into
 * values (they would keep the new look if it rolled back).
 */
void reshaped_at_commit(const std::set<uint32_t> &tables) {
  reload_at_commit(tables, kReloadSchema);
  for (uint32_t relid : tables) note_changed_wholesale(relid);
}

/*
 * Which rows of tables some role sees changed wholesale (their policies,
 * row level security or owner): at commit, a RELOAD marker (why:
 * kReloadSecurity) for each of them that is watched, and for each watched
 * table whose policies read one of them; every value holding such a table
 * reloads, whoever holds it (row level security may have just stopped
 * applying).  The policy triggers follow the new policies.
 */
void row_security_changed(const std::set<uint32_t> &tables) {
  if (refreshing_watches() || tables.empty()) return;
  std::set<uint32_t> affected = dependents_of(tables);
  for (uint32_t relid : oids_of("SELECT relid::pg_catalog.oid FROM ectosync.watched_tables", true))
    if (tables.count(relid)) affected.insert(relid);
  if (affected.empty()) return;
  reload_at_commit(affected, kReloadSecurity);
  refresh_watches();
  SpiScope spi;
  for (uint32_t relid : affected) warn_hidden_policy_sources(relid);
}

/*
 * Any other DDL of a policy source (a partition attached or detached, a
 * column retyped with USING, a trigger disabled, a partition made): its
 * rows may have changed without its row trigger, so the values its
 * dependents' policies apply to reload at commit (kReloadPolicy); when
 * remake (a trigger toggled, partitions came or went), its triggers are
 * made again (enabled, on new partitions).  Only then: a refresh holds
 * the watches' lock until the source owner's transaction ends.
 */
void policy_sources_altered(const std::set<uint32_t> &tables, bool remake) {
  std::set<uint32_t> dependents = dependents_of(tables);
  if (dependents.empty()) return;
  reload_at_commit(dependents, kReloadPolicy);
  if (remake) refresh_watches();
}

/* The statement's objects of catalog, as a query of columns of c. */
std::string ddl_objects_sql(const char *catalog, const char *columns) {
  return std::string("SELECT ") + columns +
         " FROM pg_catalog.pg_event_trigger_ddl_commands() c"
         " WHERE c.classid OPERATOR(pg_catalog.=) '" +
         catalog + "'::pg_catalog.regclass";
}

/*
 * CREATE OR REPLACE VIEW or FUNCTION, ALTER VIEW (security_invoker) or
 * ALTER FUNCTION (SECURITY DEFINER, OWNER TO): when a watched table's
 * policies read through the view or call the function, what they show may
 * have changed (it may read other tables now, or as another role): the
 * values they apply to reload at commit (kReloadPolicy) and the policy
 * triggers follow the new definition.  Only the watched tables that
 * pg_depend says may reach it are walked (their policies read): a walk
 * opens each table, waiting behind another transaction's lock.
 */
void policy_namer_redefined(const char *catalog) {
  if (refreshing_watches()) return;
  std::set<uint32_t> redefined = oids_of(ddl_objects_sql(catalog, "c.objid").c_str(), true);
  if (redefined.empty()) return;
  /* The watched tables whose policies may reach them, from pg_depend
   * upwards (views, functions, operators, policies, their tables and the
   * tables these inherit from), without opening a table: only those are
   * walked, so that another role's lock on its own watched table holds up
   * no one else's redefinition. */
  std::string candidates_sql =
      "WITH RECURSIVE reach AS (" +
      ddl_objects_sql(catalog, "c.classid AS classid, c.objid AS objid") +
      " UNION SELECT n.classid, n.objid FROM reach r, LATERAL ("
      "SELECT CASE WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass"
      " OR d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass"
      " THEN d.classid ELSE 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid END AS "
      "classid,"
      " CASE WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
      " THEN (SELECT w.ev_class FROM pg_catalog.pg_rewrite w"
      " WHERE w.oid OPERATOR(pg_catalog.=) d.objid)"
      " WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass"
      " THEN (SELECT p.polrelid FROM pg_catalog.pg_policy p"
      " WHERE p.oid OPERATOR(pg_catalog.=) d.objid) ELSE d.objid END AS objid"
      " FROM pg_catalog.pg_depend d WHERE d.refclassid OPERATOR(pg_catalog.=) r.classid"
      " AND d.refobjid OPERATOR(pg_catalog.=) r.objid AND d.deptype OPERATOR(pg_catalog.=) 'n'"
      " AND d.classid OPERATOR(pg_catalog.=) ANY (ARRAY["
      "'pg_catalog.pg_policy'::pg_catalog.regclass, 'pg_catalog.pg_rewrite'::pg_catalog.regclass,"
      " 'pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass"
      "]::pg_catalog.oid[])"
      " UNION ALL SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, i.inhparent"
      " FROM pg_catalog.pg_inherits i WHERE r.classid OPERATOR(pg_catalog.=)"
      " 'pg_catalog.pg_class'::pg_catalog.regclass AND i.inhrelid OPERATOR(pg_catalog.=) r.objid"
      ") n)"
      " SELECT r.objid FROM reach r JOIN ectosync.watched_tables w"
      " ON w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) r.objid"
      " WHERE r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass";
  std::set<uint32_t> candidates = oids_of(candidates_sql.c_str(), true);
  if (candidates.empty()) return;
  bool views = std::string(catalog) == "pg_catalog.pg_class";
  std::set<uint32_t> affected;
  {
    SpiScope spi;
    for (uint32_t relid : candidates) {
      PolicySources sources = policy_sources(relid);
      for (uint32_t oid : views ? sources.views : sources.functions)
        if (redefined.count(oid)) affected.insert(relid);
    }
  }
  if (affected.empty()) return;
  reload_at_commit(affected, kReloadPolicy);
  /* (a refresh holds the watches' lock until this transaction ends: not
   * for a definition that reads what it read) */
  std::set<uint32_t> watched =
      oids_of("SELECT relid::pg_catalog.oid FROM ectosync.watched_tables", true);
  bool current = false;
  {
    SpiScope spi;
    current = policy_triggers_current(std::vector<uint32_t>(watched.begin(), watched.end()));
  }
  if (!current) refresh_watches();
  SpiScope spi;
  for (uint32_t relid : affected) warn_hidden_policy_sources(relid);
}

/*
 * ALTER SCHEMA old RENAME: each watched table in it is renamed, as by
 * ALTER TABLE ... SET SCHEMA (the values' "table" names the schema).  The
 * marker is queued at commit: the rename locks no table, so a reload
 * before the commit would still read the old name.  The policy triggers
 * name their tables: the watches are refreshed only when one names a
 * table of the schema (a refresh holds the watches' lock until the
 * renaming transaction ends).
 */
void follow_schema_rename(const RenameStmt *stmt) {
  if (refreshing_watches()) return;
  std::set<uint32_t> tables = oids_of(
      "SELECT w.relid::pg_catalog.oid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
      " JOIN pg_catalog.pg_class k ON k.relnamespace OPERATOR(pg_catalog.=) c.objid"
      " JOIN ectosync.watched_tables w ON w.relid::pg_catalog.oid"
      " OPERATOR(pg_catalog.=) k.oid WHERE c.classid OPERATOR(pg_catalog.=)"
      " 'pg_catalog.pg_namespace'::pg_catalog.regclass",
      true);
  if (tables.empty()) return;
  reshaped_at_commit(tables);
  bool named = false;
  {
    SpiScope spi;
    named = policy_triggers_name_schema(stmt->subname);
  }
  if (named) refresh_watches();
}

/*
 * ALTER TRIGGER ectosync_capture (or ectosync_truncate) ON a watched
 * table, or on a partition of one, RENAME: the trigger is no longer one
 * that ecto_sync keeps, and a DROP of it would fire no refresh: capture
 * would stop unseen for the values loaded before.  The watches are
 * refreshed, which makes the capture trigger again (a capture restart:
 * the values holding the table reload).
 */
void follow_trigger_rename(const RenameStmt *stmt) {
  if (refreshing_watches() || !stmt->subname) return;
  std::string old_name = stmt->subname;
  if (old_name != kTrigger && old_name != kTruncateTrigger) return;
  std::set<uint32_t> tables = oids_of(
      "SELECT t.tgrelid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
      " JOIN pg_catalog.pg_trigger t ON t.oid OPERATOR(pg_catalog.=) c.objid"
      " JOIN ectosync.watched_tables w ON w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)"
      " t.tgrelid OR w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (ARRAY("
      "SELECT a.relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors(t.tgrelid) a))"
      " WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass",
      false);
  if (!tables.empty()) refresh_watches();
}

/*
 * The catalog of a view or function that the statement redefines or
 * alters ("" for a new one: nothing refers to it yet), or null for a
 * statement of another kind.
 */
const char *namer_catalog(Node *parsetree) {
  switch (nodeTag(parsetree)) {
    case T_ViewStmt:
      return castNode(ViewStmt, parsetree)->replace ? "pg_catalog.pg_class" : "";
    case T_CreateFunctionStmt:
      return castNode(CreateFunctionStmt, parsetree)->replace ? "pg_catalog.pg_proc" : "";
    case T_AlterFunctionStmt:
      return "pg_catalog.pg_proc";
    case T_AlterOwnerStmt: {
      ObjectType type = castNode(AlterOwnerStmt, parsetree)->objectType;
      return type == OBJECT_FUNCTION || type == OBJECT_ROUTINE ? "pg_catalog.pg_proc" : nullptr;
    }
    case T_AlterTableStmt:
      return castNode(AlterTableStmt, parsetree)->objtype == OBJECT_VIEW ? "pg_catalog.pg_class"
                                                                         : nullptr;
    default:
      return nullptr;
  }
}

/*
 * Whether the statement changes how values of an existing type render:
 * ALTER TYPE ... RENAME VALUE of an enum, or the attributes of a composite
 * type added, dropped, renamed or retyped.  (ADD VALUE renders no existing
 * value otherwise; a type's name is not rendered.)
 */
bool rerenders_type(Node *parsetree) {
  switch (nodeTag(parsetree)) {
    case T_AlterEnumStmt:
      return castNode(AlterEnumStmt, parsetree)->oldVal != nullptr;
    case T_RenameStmt:
      return castNode(RenameStmt, parsetree)->renameType == OBJECT_ATTRIBUTE;
    case T_AlterTableStmt:
      return castNode(AlterTableStmt, parsetree)->objtype == OBJECT_TYPE;
    default:
      return false;
  }
}

/*
 * The watched tables with a column of a type the statement altered, or of
 * a type made of one (a domain over it, an array or range of it, a
 * composite type with an attribute of one), and the typed tables (CREATE
 * TABLE ... OF) of one: their rows render otherwise now, in the cache and
 * in every value that holds them, while no row changed.  Their values
 * reload when the statement commits (ALTER TYPE locks no table: a reload
 * before the commit would read the old rendering, as a schema rename's
 * would); renamed attributes of a typed table are its columns renamed.
 */
void follow_type_change(bool renames) {
  if (refreshing_watches()) return;
  std::set<uint32_t> tables = oids_of(
      "WITH RECURSIVE types AS ("
      " SELECT c.objid AS t FROM pg_catalog.pg_event_trigger_ddl_commands() c"
      "  WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass"
      " UNION SELECT r.reltype FROM pg_catalog.pg_event_trigger_ddl_commands() c"
      "  JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.objid"
      "  WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
      " UNION SELECT n.oid FROM types x CROSS JOIN LATERAL ("
      "  SELECT d.oid FROM pg_catalog.pg_type d WHERE d.typbasetype OPERATOR(pg_catalog.=) x.t"
      "   OR d.typelem OPERATOR(pg_catalog.=) x.t"
      "  UNION SELECT r.reltype FROM pg_catalog.pg_attribute a"
      "   JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) a.attrelid"
      "   WHERE a.atttypid OPERATOR(pg_catalog.=) x.t AND r.relkind OPERATOR(pg_catalog.=) 'c'"
      "  UNION SELECT g.rngtypid FROM pg_catalog.pg_range g"
      "   WHERE g.rngsubtype OPERATOR(pg_catalog.=) x.t) n)"
      " SELECT w.relid::pg_catalog.oid FROM ectosync.watched_tables w"
      " JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) w.relid::pg_catalog.oid"
      " JOIN types x ON a.atttypid OPERATOR(pg_catalog.=) x.t WHERE NOT a.attisdropped"
      " UNION SELECT w.relid::pg_catalog.oid FROM ectosync.watched_tables w"
      " JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) w.relid::pg_catalog.oid"
      " JOIN types x ON k.reloftype OPERATOR(pg_catalog.=) x.t",
      false);
  if (tables.empty()) return;
  reshaped_at_commit(tables);
  if (renames) refresh_watches();
}

/*
 * Makes the watches resolve again when one of tables' keys is no longer
 * the one its capture trigger names (a primary key, or the unique index
 * that stands for it, made or dropped): install() then queues the table's
 * Schema marker.  Values held its rows in the old key's order, and events
 * carried the old key's columns.
 */
void refresh_if_rekeyed(const std::set<uint32_t> &tables) {
  bool rekeyed = false;
  {
    SpiScope spi;
    for (uint32_t relid : tables) rekeyed = rekeyed || key_changed(relid);
  }
  if (rekeyed) refresh_watches();
}

/* CREATE UNIQUE INDEX on a watched table: it may stand for the key now. */
void follow_unique_index() {
  if (refreshing_watches()) return;
  refresh_if_rekeyed(
      oids_of("SELECT i.indrelid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
              " JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) c.objid"
              " JOIN ectosync.watched_tables w ON w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)"
              " i.indrelid WHERE c.classid OPERATOR(pg_catalog.=)"
              " 'pg_catalog.pg_class'::pg_catalog.regclass",
              false)); /* (a new snapshot: the statement's does not see the index) */
}

void follow_alter_table(Node *parsetree) {
  if (refreshing_watches()) return;
  Effects effects = effects_of(parsetree);
  if (effects.secures)
    row_security_changed(tables_changed());
  else
    policy_sources_altered(with_parents(tables_changed()),
                           effects.toggles_triggers || effects.repartitions);
  if (!effects.reshapes && !effects.renames_columns && !effects.renames_table &&
      !effects.toggles_triggers && !effects.rekeys)
    return;
  std::set<uint32_t> tables = watched_tables_changed();
  if (effects.regroups && !tables.empty()) reload_at_commit(tables, kReloadSchema);
  if (effects.reshapes)
    for (uint32_t relid : tables) {
      pg_call([&] { restart_capture(relid, kReloadSchema); });
      note_changed_wholesale(relid);
    }
  if (effects.toggles_triggers) {
    for (uint32_t relid : tables) keep_capture_enabled(relid);
    /* (a partition's clone, as a restore's DISABLE and ENABLE TRIGGER ALL
     * leave it: its rows are the watched table's) */
    for (const auto &[partition, watched] : watched_partitions_changed())
      keep_capture_enabled(partition, watched);
  }
  /* (constraints and indexes only when a key changed: a restore adds its
   * tables' keys and foreign keys after the watches, which cannot resolve
   * until the last of them) */
  if ((effects.renames_columns || effects.renames_table) && !tables.empty())
    refresh_watches();
  else if (effects.rekeys)
    refresh_if_rekeyed(tables);
}

}  // namespace

}  // namespace ectosync

using namespace ectosync;

/* ectosync._on_ddl_command_end() RETURNS event_trigger, ON ddl_command_end WHEN TAG IN ('ALTER
 * TABLE', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE POLICY', 'ALTER POLICY', 'CREATE VIEW',
 * 'CREATE FUNCTION', 'ALTER VIEW', 'ALTER FUNCTION', 'ALTER ROUTINE', 'ALTER TYPE',
 * 'CREATE INDEX', 'ALTER TRIGGER', 'ALTER INDEX', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE',
 * 'ALTER FOREIGN TABLE') */
ECTOSYNC_FUNCTION(ectosync_on_ddl_command_end) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("ectosync._on_ddl_command_end() must be called as an event trigger")));
  Node *parsetree = ((EventTriggerData *)fcinfo->context)->parsetree;
  if (IsA(parsetree, RenameStmt) && castNode(RenameStmt, parsetree)->renameType == OBJECT_SCHEMA)
    follow_schema_rename(castNode(RenameStmt, parsetree));
  else if (IsA(parsetree, RenameStmt) &&
           castNode(RenameStmt, parsetree)->renameType == OBJECT_TRIGGER)
    follow_trigger_rename(castNode(RenameStmt, parsetree));
  else if (IsA(parsetree, CreatePolicyStmt) || IsA(parsetree, AlterPolicyStmt))
    row_security_changed(tables_of_policies_changed());
  else if (const char *catalog = namer_catalog(parsetree)) {
    if (*catalog) policy_namer_redefined(catalog);
  } else if (rerenders_type(parsetree)) {
    follow_type_change(IsA(parsetree, RenameStmt));
  } else if (IsA(parsetree, AlterTableStmt)) {
    follow_alter_table(parsetree);
    /* (ALTER TABLE names views too: OWNER TO, SET (security_invoker)) */
    policy_namer_redefined("pg_catalog.pg_class");
  } else if (IsA(parsetree, IndexStmt)) {
    if (castNode(IndexStmt, parsetree)->unique) follow_unique_index();
  } else if (IsA(parsetree, CreateStmt)) {
    /* (a partition or an inheritance child made: of a policy source, it
     * needs its TRUNCATE trigger, or all of them) */
    CreateStmt *create = castNode(CreateStmt, parsetree);
    if ((create->partbound || create->inhRelations) && !refreshing_watches())
      policy_sources_altered(with_parents(tables_changed()), true);
  } else if (!IsA(parsetree, AlterOwnerStmt)) /* (ALTER SCHEMA ... OWNER TO) */
    follow_alter_table(parsetree);
  PG_RETURN_VOID();
}

/*
 * ectosync._row_security_changed(tables oid[]): the sql_drop event
 * trigger's work when a policy of one of tables was dropped.
 */
ECTOSYNC_FUNCTION(ectosync_row_security_changed) {
  row_security_changed(oid_set(PG_GETARG_ARRAYTYPE_P(0)));
  PG_RETURN_VOID();
}

/*
 * ectosync._index_dropped(): the sql_drop event trigger's work when an
 * index was dropped.  Its table is unknown by then: the watched tables
 * whose key is no longer the one their capture trigger names (the index
 * stood for it) make the watches resolve again.  Only the tables whose
 * indexes the role that dropped it could drop (it has their owner's
 * rights: the owner, a member, a superuser; the event trigger runs as the
 * extension's owner, the statement as the outer user): another role's
 * DROP INDEX of its own index does not run a refresh, with its lock, in
 * that role's transaction for a table that is not its own.
 */
ECTOSYNC_FUNCTION(ectosync_index_dropped) {
  (void)fcinfo;
  if (refreshing_watches()) PG_RETURN_VOID();
  std::string sql =
      "SELECT w.relid::pg_catalog.oid FROM ectosync.watched_tables w"
      " JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) w.relid::pg_catalog.oid"
      " WHERE pg_catalog.pg_has_role(" +
      std::to_string(GetOuterUserId()) + "::pg_catalog.oid, c.relowner, 'USAGE')";
  refresh_if_rekeyed(oids_of(sql.c_str(), true));
  PG_RETURN_VOID();
}
