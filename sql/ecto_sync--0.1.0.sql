-- ecto_sync 0.1.0: watch tables through their foreign keys, cache each
-- changed row once, and patch the jsonb values that clients hold.
\echo Use "CREATE EXTENSION ecto_sync" to load this file. \quit

-- The background worker and the shared-memory cache exist only when the
-- library is in shared_preload_libraries: refuse to install otherwise.
CREATE FUNCTION ectosync._require_preload() RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'ectosync_require_preload';
SELECT ectosync._require_preload();

CREATE FUNCTION ectosync.version() RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ectosync_version';
COMMENT ON FUNCTION ectosync.version() IS 'The version of the loaded ecto_sync library';

-- ==== capture, worker, stats ====

-- The row trigger that watch() installs on captured tables; see capture.cpp.
CREATE FUNCTION ectosync.capture() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'ectosync_capture';

CREATE FUNCTION ectosync._wake() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'ectosync_wake';
-- Start this database's worker now rather than at the launcher's next look.
SELECT ectosync._wake();

CREATE FUNCTION ectosync.stats(
    OUT epoch text, OUT worker_pid int, OUT last_seq bigint, OUT processed_seq bigint,
    OUT events_captured bigint, OUT events_queued bigint, OUT events_dropped bigint,
    OUT events_processed bigint, OUT queue_bytes bigint, OUT queue_peak_bytes bigint,
    OUT batches bigint, OUT load_queries bigint, OUT rows_loaded bigint,
    OUT notifications_sent bigint, OUT reload_markers bigint,
    OUT cache_entries bigint, OUT cache_bytes bigint, OUT cache_capacity bigint,
    OUT cache_hits bigint, OUT cache_misses bigint, OUT cache_evictions bigint,
    OUT lag_p50_ms float8, OUT lag_p99_ms float8, OUT lag_samples bigint)
    RETURNS record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_stats';
COMMENT ON FUNCTION ectosync.stats() IS
    'Counters of this database''s capture queue and worker, and of the shared row cache';
CREATE VIEW ectosync.stats AS SELECT * FROM ectosync.stats();

CREATE FUNCTION ectosync.wait_for_worker(timeout_ms int DEFAULT 10000) RETURNS boolean
    LANGUAGE c STRICT VOLATILE AS 'MODULE_PATHNAME', 'ectosync_wait_for_worker';
COMMENT ON FUNCTION ectosync.wait_for_worker(int) IS
    'Wait until the worker has loaded and notified every event queued before the call';

CREATE FUNCTION ectosync._events_since(after bigint)
    RETURNS TABLE (seq bigint, tbl text, op text, pk text, keys text, payload text)
    LANGUAGE c STRICT VOLATILE AS 'MODULE_PATHNAME', 'ectosync_events_since';
COMMENT ON FUNCTION ectosync._events_since(bigint) IS
    'Test helper: the logged events after a seq (keys included), once the worker handled them';
-- It shows key values of rows of every watched table, whatever the caller
-- may read: not for PUBLIC.
REVOKE EXECUTE ON FUNCTION ectosync._events_since(bigint) FROM PUBLIC;

-- ==== sync ====
-- Test-only: rebuilds a jsonb value with ecto_sync's binary writer (new
-- nodes down to depth levels, raw copies below): the result must be
-- byte-identical to the input.
CREATE FUNCTION ectosync._jsonb_rebuild(value jsonb, depth int) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ectosync_jsonb_rebuild';

-- The value patched with one event (a notification payload or a bare event
-- id).  VOLATILE: it reads the shared cache and the event log, which change
-- under a statement.  PARALLEL RESTRICTED: on a cache miss it reads rows
-- through SPI and writes the shared cache.
CREATE FUNCTION ectosync.sync(value jsonb, event text) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'ectosync_sync';
COMMENT ON FUNCTION ectosync.sync(jsonb, text) IS
    'Patch a value made by ectosync.load() with one event; SQLSTATE ZE001: reload it';
-- ==== end sync ====

-- ==== catalog, watch, load ====
-- Association discovery (src/core/assoc.hpp documents the names), watches and
-- their capture triggers (src/capture/watch.cpp), load() (src/value/load.cpp).

GRANT USAGE ON SCHEMA ectosync TO PUBLIC;

-- Watches: one row per (root, normalized assocs spec).  tables is what the
-- watch needs of each table of its plan, as computed when the watch last
-- resolved: [{"relid", "pk": [attnum...], "tracked": [attnum...],
-- "is_join", "join_targets": [...]}].  Rows are written by watch()/unwatch()
-- only.
CREATE TABLE ectosync.watches (
    root regclass NOT NULL,
    spec jsonb NOT NULL,
    tables jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (root, spec)
);
COMMENT ON TABLE ectosync.watches IS
  'ecto_sync watches: root table and normalized assocs spec; tables = what the watch needs of each table (written by watch/unwatch)';

-- The union over all watches, one row per captured table: what its trigger
-- ectosync_capture captures, and what the worker must load for a change.
CREATE TABLE ectosync.watched_tables (
    relid regclass PRIMARY KEY,
    pk_attnums int2[] NOT NULL,
    tracked_attnums int2[] NOT NULL,
    is_join boolean NOT NULL,
    join_targets jsonb NOT NULL DEFAULT '[]'
);
COMMENT ON TABLE ectosync.watched_tables IS
  'Tables with the triggers ectosync_capture (rows) and ectosync_truncate. pk_attnums: primary key in key order; tracked_attnums: the other captured key columns (foreign keys, join keys, keys referenced by has_many); is_join: a join table of some many_to_many watch; join_targets: for join tables, [{"relid": referenced table oid, "fk_attnums": [join table columns], "target_attnums": [referenced columns], "target_columns": [their names]}], one per referenced end: load those rows besides the join row';

SELECT pg_catalog.pg_extension_config_dump('ectosync.watches', '');
SELECT pg_catalog.pg_extension_config_dump('ectosync.watched_tables', '');
GRANT SELECT ON ectosync.watches, ectosync.watched_tables TO PUBLIC;

CREATE FUNCTION ectosync._associations(tbl regclass) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'ectosync_associations_json';

CREATE FUNCTION ectosync.associations(tbl regclass)
    RETURNS TABLE (name text, kind text, target regclass, owner_columns text[],
                   target_columns text[], through regclass, through_owner_columns text[],
                   through_target_columns text[])
    LANGUAGE sql STABLE STRICT AS $$
  SELECT a->>'name', a->>'kind', (a->>'target')::oid::regclass,
         ARRAY(SELECT pg_catalog.jsonb_array_elements_text(a->'owner_columns')),
         ARRAY(SELECT pg_catalog.jsonb_array_elements_text(a->'target_columns')),
         (a->>'through')::oid::regclass,
         CASE WHEN a ? 'through' THEN
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(a->'through_owner_columns')) END,
         CASE WHEN a ? 'through' THEN
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(a->'through_target_columns')) END
    FROM pg_catalog.jsonb_array_elements(ectosync._associations(tbl)) WITH ORDINALITY AS x(a, n)
   ORDER BY n
$$;
COMMENT ON FUNCTION ectosync.associations(regclass) IS
  'The associations of a table found through foreign keys, by name';

CREATE FUNCTION ectosync.watch(tbl regclass, assocs jsonb DEFAULT '[]') RETURNS jsonb
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_watch';
COMMENT ON FUNCTION ectosync.watch(regclass, jsonb) IS
  'Capture changes of tbl and of the tables of its assocs (idempotent); returns {"tables": [...]}';

CREATE FUNCTION ectosync.unwatch(tbl regclass, assocs jsonb DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_unwatch';
COMMENT ON FUNCTION ectosync.unwatch(regclass, jsonb) IS
  'Remove a watch (NULL assocs: every watch rooted at tbl) and the triggers no watch needs any more';

CREATE FUNCTION ectosync._channels(tbl regclass, assocs jsonb) RETURNS text[]
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'ectosync_channels_array';

CREATE FUNCTION ectosync.channels(tbl regclass, assocs jsonb DEFAULT '[]') RETURNS SETOF text
    LANGUAGE sql STABLE AS $$ SELECT pg_catalog.unnest(ectosync._channels(tbl, assocs)) $$;
COMMENT ON FUNCTION ectosync.channels(regclass, jsonb) IS
  'The notification channels a value of this shape needs (join tables included)';

CREATE FUNCTION ectosync.subscribe(tbl regclass, assocs jsonb DEFAULT '[]') RETURNS SETOF text
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  channel text;
BEGIN
  FOR channel IN SELECT ectosync.channels(tbl, assocs) LOOP
    EXECUTE pg_catalog.format('LISTEN %I', channel);
    RETURN NEXT channel;
  END LOOP;
END
$$;
COMMENT ON FUNCTION ectosync.subscribe(regclass, jsonb) IS
  'LISTEN to the channels of a value shape; returns them';

CREATE FUNCTION ectosync.load(tbl regclass, assocs jsonb DEFAULT '[]', filter jsonb DEFAULT NULL)
    RETURNS jsonb LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_load';
COMMENT ON FUNCTION ectosync.load(regclass, jsonb, jsonb) IS
  'A value: the rows of tbl (equal to filter, if given) with their associations, ready for sync()';

CREATE FUNCTION ectosync._load_rows_where(tbl regclass, assocs jsonb, columns text[], vals text[])
    RETURNS jsonb LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'ectosync_load_rows_where';
COMMENT ON FUNCTION ectosync._load_rows_where(regclass, jsonb, text[], text[]) IS
  'The rows of tbl whose columns equal vals (NULL: IS NULL), nested as load() nests them: what sync() loads for rows entering a value';

-- Dropped tables, columns and constraints: watches that needed them are
-- removed (with a WARNING) and triggers rebuilt.  Renames need nothing:
-- watches and triggers are kept by oid and attnum.
CREATE FUNCTION ectosync._refresh_watches(after_drop boolean) RETURNS void
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'ectosync_refresh_watches';
COMMENT ON FUNCTION ectosync._refresh_watches(boolean) IS
  'Re-resolve every watch and rebuild the capture triggers; after a restore (new oids, attnums) run SELECT ectosync._refresh_watches(false)';

REVOKE EXECUTE ON FUNCTION ectosync._refresh_watches(boolean) FROM PUBLIC;

-- Runs as the extension's owner: whoever drops a table may not call
-- _refresh_watches() directly.
CREATE FUNCTION ectosync._on_sql_drop() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() d
              WHERE d.classid IN ('pg_catalog.pg_class'::regclass,
                                  'pg_catalog.pg_constraint'::regclass))
     AND EXISTS (SELECT 1 FROM ectosync.watches) THEN
    PERFORM ectosync._refresh_watches(true);
  END IF;
END
$$;
CREATE EVENT TRIGGER ectosync_sql_drop ON sql_drop EXECUTE FUNCTION ectosync._on_sql_drop();
-- ==== end of catalog, watch, load ====
