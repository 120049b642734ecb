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
