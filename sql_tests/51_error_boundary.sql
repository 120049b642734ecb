-- The error boundary (src/pg/pg_boundary.hpp): an error raised deep inside
-- ecto_sync reaches the client as an ordinary error with its SQLSTATE, the
-- backend stays usable, and nothing leaks.  10,000 failing calls of several
-- kinds, each caught in plpgsql, must not grow the backend's memory:
--   - memory contexts: sum(total_bytes) of pg_backend_memory_contexts;
--   - C++ heap (std::string, std::vector: malloc, outside every memory
--     context): RssAnon of /proc/self/status (anonymous private pages, so
--     shared memory the backend touches does not count).
-- Both are measured after a warm-up (catalog caches, plan caches, malloc
-- arenas fill once) and must grow by less than 1 MB.  The same for 10,000
-- successful syncs.
SET client_min_messages = warning;
SELECT ectosync.watch('posts', '["tags"]') IS NOT NULL AS watched;
CREATE TEMP TABLE val AS SELECT ectosync.load('posts', '["tags"]') AS v;
UPDATE tags SET name = name || '!' WHERE id = 2;
SELECT ectosync.wait_for_worker() AS drained;
CREATE TEMP TABLE ev AS
  SELECT payload AS e FROM ectosync._events_since((SELECT (v->>'seq')::bigint FROM val)) LIMIT 1;

-- LocalBufferContext is left out: it holds pages of temporary tables and
-- grows (lazily, up to temp_buffers) as they are read, leak or not.
CREATE FUNCTION pg_temp.context_bytes() RETURNS bigint LANGUAGE sql AS $$
  SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts
   WHERE name <> 'LocalBufferContext' $$;
CREATE FUNCTION pg_temp.anon_kb() RETURNS bigint LANGUAGE sql AS $$
  SELECT substring(pg_read_file('/proc/self/status') FROM 'RssAnon:\s*([0-9]+) kB')::bigint $$;

-- One failing call of kind k (0..4); returns its SQLSTATE.
CREATE FUNCTION pg_temp.fail(k int, v jsonb, e text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  CASE k
    -- a C++ exception (ectosync::Error) thrown in the middle of sync()
    WHEN 0 THEN PERFORM ectosync.sync(v, 'garbage ' || e);
    -- a PostgreSQL error raised inside pg_call (integer input of 'abc'),
    -- carried through C++ as PgError and re-thrown as it was
    WHEN 1 THEN PERFORM ectosync._load_rows_where('posts', '[]', '{id}', '{abc}');
    -- a PostgreSQL error converted into ecto_sync's own (bad filter cast)
    WHEN 2 THEN PERFORM ectosync.load('posts', '["tags"]', '{"id": "abc"}');
    -- ZE001: a value of another server run
    WHEN 3 THEN PERFORM ectosync.sync(jsonb_set(v, '{epoch}', '"0123456789abcdef"'), e);
    -- an error of the catalog code: unknown association
    ELSE PERFORM ectosync.load('posts', '["nosuch"]');
  END CASE;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;

-- Each kind once, with its SQLSTATE.
SELECT k, pg_temp.fail(k, v, e) AS sqlstate FROM generate_series(0, 4) k, val, ev ORDER BY k;

CREATE TEMP TABLE growth (what text, context_bytes bigint, anon_kb bigint);
DO $$
DECLARE
  v jsonb := (SELECT v FROM val);
  e text := (SELECT e FROM ev);
  bytes0 bigint; kb0 bigint; errors int := 0;
BEGIN
  FOR i IN 1..1000 LOOP PERFORM pg_temp.fail(i % 5, v, e); END LOOP; -- warm-up
  bytes0 := pg_temp.context_bytes();
  kb0 := pg_temp.anon_kb();
  FOR i IN 1..10000 LOOP
    IF pg_temp.fail(i % 5, v, e) <> 'no error' THEN errors := errors + 1; END IF;
  END LOOP;
  IF errors <> 10000 THEN RAISE EXCEPTION 'only % of 10000 calls failed', errors; END IF;
  INSERT INTO growth VALUES ('10000 failing calls',
    pg_temp.context_bytes() - bytes0, pg_temp.anon_kb() - kb0);
END $$;

DO $$
DECLARE
  v jsonb := (SELECT v FROM val);
  e text := (SELECT e FROM ev);
  r jsonb; bytes0 bigint; kb0 bigint;
BEGIN
  FOR i IN 1..1000 LOOP r := ectosync.sync(v, e); END LOOP; -- warm-up
  bytes0 := pg_temp.context_bytes();
  kb0 := pg_temp.anon_kb();
  FOR i IN 1..10000 LOOP
    r := ectosync.sync(v, e);  -- applies the event: a real patch each time
  END LOOP;
  IF (r - 'seq') <> (ectosync.load('posts', '["tags"]') - 'seq') THEN
    RAISE EXCEPTION 'the synced value differs from a fresh load';
  END IF;
  INSERT INTO growth VALUES ('10000 successful syncs',
    pg_temp.context_bytes() - bytes0, pg_temp.anon_kb() - kb0);
END $$;

SELECT what, context_bytes < 1024 * 1024 AS contexts_bounded,
       anon_kb < 1024 AS heap_bounded
FROM growth ORDER BY what;

-- The backend is still usable, and so is ecto_sync in it.
SELECT 1 AS usable;
SELECT (ectosync.sync(v, e) - 'seq') = (ectosync.load('posts', '["tags"]') - 'seq') AS sync_works
FROM val, ev;
UPDATE tags SET name = rtrim(name, '!') WHERE id = 2;
SELECT ectosync.unwatch('posts', '["tags"]');

-- One held value whose reload fails in the middle of PostgreSQL's work
-- (its filter no longer casts: an enum value renamed) is its own row of
-- wait_changes(), and the transaction goes on sound: the failed cast is
-- rolled back alone, and no SPI connection or snapshot is left behind
-- (PostgreSQL would warn at commit).
CREATE TYPE boundary_mood AS ENUM ('happy', 'sad');
CREATE TABLE boundary_people (id int PRIMARY KEY, mood boundary_mood, name text);
INSERT INTO boundary_people VALUES (1, 'happy', 'a'), (2, 'sad', 'b');
SELECT ectosync.watch('boundary_people') IS NOT NULL AS watched;
SELECT ectosync.hold('happy', 'boundary_people', '[]', '{"mood": "happy"}', listen => false)
  IS NOT NULL AS held;
SELECT ectosync.hold('second', 'boundary_people', '[]', '{"id": 2}', listen => false)
  IS NOT NULL AS held;
ALTER TYPE boundary_mood RENAME VALUE 'happy' TO 'glad';
UPDATE boundary_people SET name = 'b2' WHERE id = 2;
SELECT ectosync.wait_for_worker() AS drained;
SELECT name, error, jsonb_path_query_array(patch, '$[*].value.rows[*].name') AS names
  FROM ectosync.wait_changes(1000) ORDER BY name;
DO $$
BEGIN
  PERFORM * FROM ectosync.wait_changes(0);
  PERFORM count(*) FROM boundary_people;
END $$;
SELECT ectosync.release(ARRAY['happy', 'second']) AS released;
SELECT ectosync.unwatch('boundary_people');
DROP TABLE boundary_people;
DROP TYPE boundary_mood;
