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

-- A PostgreSQL error while one value is read (here its column's cast to
-- json raises) ends the call it happens in: the transaction cannot go on.
-- From then on that value is read in a subtransaction of its own, until it
-- succeeds: the error is its row, and the session's other values go on.
CREATE TABLE boundary_fuse (blown boolean);
CREATE TYPE boundary_fused AS ENUM ('x');
CREATE FUNCTION boundary_fused_json(boundary_fused) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM public.boundary_fuse) THEN
    RAISE EXCEPTION 'the fuse blew';
  END IF;
  RETURN to_json($1::text);
END $$;
CREATE CAST (boundary_fused AS json) WITH FUNCTION boundary_fused_json(boundary_fused);
CREATE TABLE boundary_wired (id int PRIMARY KEY, f boundary_fused, v int);
CREATE TABLE boundary_calm (id int PRIMARY KEY, v int);
INSERT INTO boundary_wired VALUES (1, 'x', 1);
INSERT INTO boundary_calm VALUES (1, 1);
SELECT ectosync.watch('boundary_wired') IS NOT NULL AS watched,
       ectosync.watch('boundary_calm') IS NOT NULL AS watched;
CREATE TEMP TABLE boundary_copies AS
  SELECT n, ectosync.hold(n, t, listen => false) AS v, 0::bigint AS version
  FROM (VALUES ('wired', 'boundary_wired'::regclass), ('calm', 'boundary_calm')) s(n, t);
INSERT INTO boundary_fuse VALUES (true);
UPDATE boundary_wired SET v = 2;
UPDATE boundary_calm SET v = 2;
SELECT ectosync.wait_for_worker() AS drained;
\set VERBOSITY terse
SELECT name FROM ectosync.wait_changes(1000);
\set VERBOSITY default
CREATE FUNCTION pg_temp.take_changes() RETURNS TABLE (name text, error text) LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM ectosync.wait_changes(1000) LOOP
    UPDATE boundary_copies SET v = regress.patch(v, r.patch), version = r.version
     WHERE n = r.name AND r.error IS NULL;
    name := r.name;
    error := r.error;
    RETURN NEXT;
  END LOOP;
END $$;
SELECT * FROM pg_temp.take_changes() ORDER BY name;
DELETE FROM boundary_fuse;
UPDATE boundary_wired SET v = 3;
SELECT ectosync.wait_for_worker() AS drained;
SELECT * FROM pg_temp.take_changes() ORDER BY name;
SELECT n, (v - 'seq') = (ectosync.load(CASE n WHEN 'wired' THEN 'boundary_wired'
                                              ELSE 'boundary_calm' END::regclass) - 'seq')
         AS equals_a_fresh_load
  FROM boundary_copies ORDER BY n;
SELECT ectosync.release(ARRAY['wired', 'calm']) AS released;
SELECT ectosync.unwatch('boundary_wired'), ectosync.unwatch('boundary_calm');
DROP TABLE boundary_wired, boundary_calm, boundary_fuse;
DROP FUNCTION boundary_fused_json CASCADE;
DROP TYPE boundary_fused;
