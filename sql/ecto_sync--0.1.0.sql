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
