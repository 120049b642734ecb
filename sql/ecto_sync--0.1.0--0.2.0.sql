-- ecto_sync 0.2.0: values held in the session (src/held/held.cpp).  A client
-- holds its value in its own backend and, on each notification, gets only
-- the JSON Patch of what changed instead of sending and receiving the whole
-- value.
\echo Use "ALTER EXTENSION ecto_sync UPDATE TO '0.2.0'" to load this file. \quit

-- listen => false: the client waits with wait_changes() instead of LISTEN.
CREATE FUNCTION ectosync.hold(name text, tbl regclass, assocs jsonb DEFAULT '[]',
                              filter jsonb DEFAULT NULL, listen boolean DEFAULT true)
    RETURNS jsonb LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_hold';
COMMENT ON FUNCTION ectosync.hold(text, regclass, jsonb, jsonb, boolean) IS
  'Load the value and keep it in this session under name (version 0); with listen, LISTEN to its own channel; returns it';

-- VOLATILE and PARALLEL UNSAFE: it changes session state.
CREATE FUNCTION ectosync.changes(name text, version bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_changes';
COMMENT ON FUNCTION ectosync.changes(text, bigint) IS
  'Apply the events loaded since; {"version", "seq", "patch": the JSON Patch from the given version ([] when unchanged)}';

-- Holds the statement's snapshot while it waits: keep timeouts short.
CREATE FUNCTION ectosync.wait_changes(name text, version bigint, timeout_ms int DEFAULT 10000)
    RETURNS jsonb LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_wait_changes';
COMMENT ON FUNCTION ectosync.wait_changes(text, bigint, int) IS
  'changes() as soon as the value changed, or with an empty patch after timeout_ms; wakes only for this value';

-- Many values on one connection: one call waits for all of them.
-- patch_once: names whose reply is an earlier row's (one shared value) name
-- that row in same_as instead of repeating its patch and events.
CREATE FUNCTION ectosync.wait_changes(timeout_ms int DEFAULT 10000,
                                      patch_once boolean DEFAULT false)
    RETURNS TABLE (name text, version bigint, seq bigint, patch jsonb, reloaded text,
                   events jsonb, error text, since_version bigint, same_as text)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_wait_any';
COMMENT ON FUNCTION ectosync.wait_changes(int, boolean) IS
  'A row (as changes(name) gives it) for each held value of the session that changed, as soon as one did, or whose changes failed (error); none after timeout_ms; with patch_once, a row whose patch and events are an earlier row''s names it in same_as instead';

-- Many values on one connection, with LISTEN: one channel for all of them.
CREATE FUNCTION ectosync.listen_changes() RETURNS text
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_listen_changes';
COMMENT ON FUNCTION ectosync.listen_changes() IS
  'LISTEN to this session''s channel, which the worker notifies when its held values change (then call wait_changes(0)); returns the channel';

CREATE FUNCTION ectosync.release(name text) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_release';
COMMENT ON FUNCTION ectosync.release(text) IS 'Forget a held value; false if none had that name';
CREATE FUNCTION ectosync.release(names text[]) RETURNS int LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.count(*)::pg_catalog.int4 FROM pg_catalog.unnest(names) AS n(name)
   WHERE ectosync.release(n.name)
$$;
COMMENT ON FUNCTION ectosync.release(text[]) IS 'Forget the held values of these names; how many there were';
CREATE FUNCTION ectosync.release_all() RETURNS int
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_release_all';
COMMENT ON FUNCTION ectosync.release_all() IS
  'Forget every held value of the session of the current role and of the roles whose privileges it has (a hub''s login role after RESET ROLE: those of the roles it switched to); how many there were';

CREATE FUNCTION ectosync.held()
    RETURNS TABLE (name text, tbl regclass, assocs jsonb, filter jsonb, version bigint,
                   seq bigint, bytes bigint, parts int, channel text, notifications bigint,
                   shared_by int)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_held';
COMMENT ON FUNCTION ectosync.held() IS 'The values this session holds';

-- rows_not_loaded: changed rows the worker did not read ahead of time, as
-- no session had used their table within ectosync.load_window.
DROP VIEW ectosync.stats;
DROP FUNCTION ectosync.stats();
CREATE FUNCTION ectosync.stats(
    OUT epoch text, OUT worker_pid int, OUT last_seq bigint, OUT processed_seq bigint,
    OUT events_captured bigint, OUT events_queued bigint, OUT events_dropped bigint,
    OUT events_processed bigint, OUT queue_bytes bigint, OUT queue_peak_bytes bigint,
    OUT batches bigint, OUT load_queries bigint, OUT rows_loaded bigint,
    OUT notifications_sent bigint, OUT reload_markers bigint,
    OUT cache_entries bigint, OUT cache_bytes bigint, OUT cache_capacity bigint,
    OUT cache_hits bigint, OUT cache_misses bigint, OUT cache_evictions bigint,
    OUT lag_p50_ms float8, OUT lag_p99_ms float8, OUT lag_samples bigint,
    OUT rows_not_loaded bigint)
    RETURNS record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_stats';
COMMENT ON FUNCTION ectosync.stats() IS
    'Counters of this database''s capture queue and worker, and of the shared row cache';
CREATE VIEW ectosync.stats AS SELECT * FROM ectosync.stats();

-- The stats view as the README shows it, for every role: the function is
-- PUBLIC's already.
GRANT SELECT ON ectosync.stats TO PUBLIC;

-- The sql_drop event trigger: pg_temp named last (unnamed, it would be
-- searched first for types and tables), and only drops that concern a
-- watched table (the table, a column, a constraint of it) refresh the
-- watches.  Refreshing locks ectosync.watches: a watch() left open in an
-- idle transaction must not block every DROP in the database.  Not an
-- index: by sql_drop its table is gone from the catalog, and any role's
-- DROP INDEX would take that lock and re-resolve every watch.  A dropped
-- index makes _index_dropped() ask, without that lock, whether a watched
-- table's key changed (the index stood for it), and refresh only then.
CREATE FUNCTION ectosync._index_dropped() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_index_dropped';
REVOKE EXECUTE ON FUNCTION ectosync._index_dropped() FROM PUBLIC;

-- A drop that concerned a watched table (the table, or a constraint of it)
-- refreshes the watches: those whose tables or columns are gone go (with a
-- WARNING); those that no longer resolve (a foreign key dropped, to be
-- added again) keep their triggers.

CREATE OR REPLACE FUNCTION ectosync._on_sql_drop() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tables oid[];
BEGIN
  SELECT pg_catalog.array_agg(DISTINCT w.relid::pg_catalog.oid) INTO tables
    FROM pg_catalog.pg_event_trigger_dropped_objects() d
    JOIN ectosync.watched_tables w
      ON (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
          AND w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid)
      OR (d.object_type OPERATOR(pg_catalog.=) 'table constraint'
          AND w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)
              pg_catalog.to_regclass(pg_catalog.format('%I.%I',
                d.address_names[1], d.address_names[2]))::pg_catalog.oid);
  IF tables IS NOT NULL THEN
    PERFORM ectosync._refresh_watches(true);
  -- A capture trigger dropped by hand (DROP TRIGGER) would lose every later
  -- change: a refresh (which drops no watch) installs it again, in the same
  -- statement; so it does a partition's own TRUNCATE trigger.
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() d,
                  LATERAL pg_catalog.to_regclass(pg_catalog.format('%I.%I',
                    d.address_names[1], d.address_names[2])) t(oid)
                 WHERE d.object_type OPERATOR(pg_catalog.=) 'trigger'
                   AND d.address_names[3] OPERATOR(pg_catalog.=) ANY
                       ('{ectosync_capture,ectosync_truncate}'::pg_catalog.text[])
                   AND EXISTS (SELECT FROM ectosync.watched_tables w
                                WHERE w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) t.oid
                                   OR w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY
                                      (ARRAY(SELECT a::pg_catalog.oid
                                               FROM pg_catalog.pg_partition_ancestors(t.oid) a))))
  THEN
    PERFORM ectosync._refresh_watches(false);
  -- A dropped index may have stood for the key of a watched table (one
  -- without a primary key): src/capture/schema_change.cpp.
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() d
                 WHERE d.object_type OPERATOR(pg_catalog.=) 'index')
        AND EXISTS (SELECT FROM ectosync.watched_tables) THEN
    PERFORM ectosync._index_dropped();
  END IF;
  -- A dropped policy (of a watched table, or of a table that a watched
  -- table's policies read): src/capture/schema_change.cpp.
  SELECT pg_catalog.array_agg(DISTINCT t.oid) INTO tables
    FROM pg_catalog.pg_event_trigger_dropped_objects() d,
         LATERAL pg_catalog.to_regclass(pg_catalog.format('%I.%I',
           d.address_names[1], d.address_names[2])) t(oid)
   WHERE d.object_type OPERATOR(pg_catalog.=) 'policy' AND t.oid IS NOT NULL;
  IF tables IS NOT NULL THEN
    PERFORM ectosync._row_security_changed(tables);
  END IF;
END
$$;

-- Row level security policies that read other tables (or other rows of
-- their own): src/capture/policy_sources.cpp.  watch() puts these triggers
-- on the tables they read; only it may (see capture() below).
CREATE FUNCTION ectosync.capture_policy_source() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'ectosync_capture_policy_source';
REVOKE EXECUTE ON FUNCTION ectosync.capture_policy_source() FROM PUBLIC;
CREATE FUNCTION ectosync._row_security_changed(tables oid[]) RETURNS void
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'ectosync_row_security_changed';
REVOKE EXECUTE ON FUNCTION ectosync._row_security_changed(oid[]) FROM PUBLIC;

-- ALTER TABLE of a watched table (src/capture/schema_change.cpp): a column added,
-- dropped, renamed or retyped, or the table (or its schema) renamed or moved, reloads the
-- values that hold it ("Schema change"); the capture triggers are rebuilt
-- (they name their columns) and kept enabled.  Not SECURITY DEFINER: the
-- function switches to the bootstrap superuser only for the extension's
-- own catalog work, as watch() does.
CREATE FUNCTION ectosync._on_ddl_command_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'ectosync_on_ddl_command_end';
CREATE EVENT TRIGGER ectosync_ddl_command_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE POLICY', 'ALTER POLICY',
                 'CREATE VIEW', 'CREATE FUNCTION', 'ALTER VIEW', 'ALTER FUNCTION', 'ALTER ROUTINE',
                 'ALTER TYPE', 'CREATE INDEX',
                 'ALTER TRIGGER',
                 -- (PostgreSQL renames a table, and its columns, through these too)
                 'ALTER INDEX', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE', 'ALTER FOREIGN TABLE')
    EXECUTE FUNCTION ectosync._on_ddl_command_end();
-- Event triggers, like row triggers, do not fire under
-- session_replication_role = replica unless enabled ALWAYS.
ALTER EVENT TRIGGER ectosync_ddl_command_end ENABLE ALWAYS;
ALTER EVENT TRIGGER ectosync_sql_drop ENABLE ALWAYS;

-- ==== partitioned tables ====
--
-- watch() of a partitioned table puts its row trigger on the partitioned
-- table (PostgreSQL clones it to every partition, those created or attached
-- later too) and a TRUNCATE trigger on it and on each partition (statement
-- triggers are not cloned).  Partitions created or attached later get their
-- TRUNCATE trigger here, at ddl_command_end; after an ALTER TABLE of a
-- partitioned table of a watched tree (ATTACH, DETACH PARTITION), and after
-- a DROP of a watched partition, rows came or went without row triggers:
-- the watched table's capture restarts at commit (a RELOAD marker).
CREATE FUNCTION ectosync._partitions_changed(root regclass, altered boolean) RETURNS void
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'ectosync_partitions_changed';
COMMENT ON FUNCTION ectosync._partitions_changed(regclass, boolean) IS
  'The partitions of watched table root changed: TRUNCATE triggers for new partitions; altered: a RELOAD marker at commit';
-- Not revoked: it acts only for the owner of root (a role can reload the
-- values of its own tables, as TRUNCATE would), and the event triggers
-- that call it run as whoever ran the DDL, so that a role that owns no
-- watched table, dropping look-alike triggers, reaches nobody's values.

CREATE FUNCTION ectosync._on_partition_ddl() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
      SELECT a.relid AS root,
             pg_catalog.bool_or(c.command_tag OPERATOR(pg_catalog.=) 'ALTER TABLE') AS altered
        FROM pg_catalog.pg_event_trigger_ddl_commands() c,
             LATERAL pg_catalog.pg_partition_ancestors(c.objid) a
        JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) a.relid
       WHERE c.object_type OPERATOR(pg_catalog.=) 'table' AND NOT k.relispartition
         AND pg_catalog.pg_has_role(k.relowner, 'USAGE')
         AND EXISTS (SELECT FROM ectosync.watched_tables w
                      WHERE w.relid::pg_catalog.oid OPERATOR(pg_catalog.=) a.relid)
       GROUP BY a.relid LOOP
    PERFORM ectosync._partitions_changed(r.root, r.altered);
  END LOOP;
END
$$;
CREATE EVENT TRIGGER ectosync_partition_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION ectosync._on_partition_ddl();

-- A dropped partition takes its rows with it, uncaptured; its parent is
-- no longer in the catalog at sql_drop, but its ectosync_truncate trigger
-- (which only partitions of watched tables and watched tables have) says
-- it was one (dropped with its table, not by DROP TRIGGER): every watched
-- partitioned table reloads.
CREATE FUNCTION ectosync._on_partition_drop() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() d
              WHERE d.object_type OPERATOR(pg_catalog.=) 'trigger' AND NOT d.original
                AND d.address_names[3] OPERATOR(pg_catalog.=) 'ectosync_truncate'
                AND NOT EXISTS (SELECT FROM ectosync.watched_tables w
                                 WHERE w.relid::pg_catalog.oid OPERATOR(pg_catalog.=)
                                       pg_catalog.to_regclass(pg_catalog.format('%I.%I',
                                         d.address_names[1], d.address_names[2]))::pg_catalog.oid)) THEN
    FOR r IN SELECT w.relid FROM ectosync.watched_tables w
               JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) w.relid::pg_catalog.oid
              WHERE k.relkind OPERATOR(pg_catalog.=) 'p'
                AND pg_catalog.pg_has_role(k.relowner, 'USAGE') LOOP
      PERFORM ectosync._partitions_changed(r.relid, true);
    END LOOP;
  END IF;
END
$$;
CREATE EVENT TRIGGER ectosync_partition_drop ON sql_drop
    EXECUTE FUNCTION ectosync._on_partition_drop();
ALTER EVENT TRIGGER ectosync_partition_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER ectosync_partition_drop ENABLE ALWAYS;

-- Capture triggers made by 0.1.0 name their columns by attnum and fire only
-- in session_replication_role = origin: rebuild them (a no-op without
-- watches).
SELECT ectosync._refresh_watches(false);

-- Only the capture triggers that watch() makes (as the bootstrap superuser)
-- may call capture(): a trigger of any role's own would write into the
-- database's shared queue.  Triggers fire without EXECUTE; a role that
-- restores a dump of its own watched tables needs it granted.
REVOKE EXECUTE ON FUNCTION ectosync.capture() FROM PUBLIC;

-- associations() named its operators and casts unqualified: a caller whose
-- search_path puts a schema before pg_catalog that another role can write
-- (public) ran that role's ->> operator with the caller's rights.
CREATE OR REPLACE FUNCTION ectosync.associations(tbl regclass)
    RETURNS TABLE (name text, kind text, target regclass, owner_columns text[],
                   target_columns text[], through regclass, through_owner_columns text[],
                   through_target_columns text[])
    LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
  SELECT a OPERATOR(pg_catalog.->>) 'name', a OPERATOR(pg_catalog.->>) 'kind',
         (a OPERATOR(pg_catalog.->>) 'target')::pg_catalog.oid::pg_catalog.regclass,
         ARRAY(SELECT pg_catalog.jsonb_array_elements_text(a OPERATOR(pg_catalog.->) 'owner_columns')),
         ARRAY(SELECT pg_catalog.jsonb_array_elements_text(a OPERATOR(pg_catalog.->) 'target_columns')),
         (a OPERATOR(pg_catalog.->>) 'through')::pg_catalog.oid::pg_catalog.regclass,
         CASE WHEN a OPERATOR(pg_catalog.?) 'through' THEN
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                   a OPERATOR(pg_catalog.->) 'through_owner_columns')) END,
         CASE WHEN a OPERATOR(pg_catalog.?) 'through' THEN
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                   a OPERATOR(pg_catalog.->) 'through_target_columns')) END
    FROM pg_catalog.jsonb_array_elements(ectosync._associations(tbl)) WITH ORDINALITY AS x(a, n)
   ORDER BY n
$$;

-- Every function of ecto_sync in SQL or PL/pgSQL pins its search_path, so
-- that none resolves a name through the caller's (00_extension checks).
ALTER FUNCTION ectosync.channels(regclass, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ectosync.subscribe(regclass, jsonb) SET search_path = pg_catalog, pg_temp;

-- _jsonb_rebuild() tests the jsonb writer (30_sync_a_writer); it is no API,
-- and its recursion follows whatever depth its caller's jsonb has.
REVOKE EXECUTE ON FUNCTION ectosync._jsonb_rebuild(jsonb, int) FROM PUBLIC;

-- A watch's spec holds its lists' constants (a $query's where: a tenant,
-- an email), of any table on its paths: a role sees the watches whose
-- every table it may read, no others.  (ecto_sync's own reads and writes
-- run as a superuser.)
ALTER TABLE ectosync.watches ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable_tables ON ectosync.watches FOR SELECT
  USING (pg_catalog.has_table_privilege(root::pg_catalog.oid, 'SELECT')
         AND NOT EXISTS (
           SELECT FROM pg_catalog.jsonb_array_elements(tables) AS t(need)
            WHERE pg_catalog.has_table_privilege(
                    (need OPERATOR(pg_catalog.->>) 'relid')::pg_catalog.oid, 'SELECT') IS NOT TRUE));
