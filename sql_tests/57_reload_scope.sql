-- A RELOAD marker reaches only the values that hold its table, and says
-- why: a bulk statement (past ectosync.max_xact_events), a TRUNCATE, a
-- capture that started again.  Values of other tables are left alone
-- (changes(): an empty patch; sync(): the rows unchanged, the seq moved on),
-- and so is every value when watch() starts capturing another table.
SET client_min_messages = warning;
CREATE SCHEMA reload_scope;
SET search_path = reload_scope, public;
CREATE TABLE a (id int PRIMARY KEY, x text);
CREATE TABLE b (id int PRIMARY KEY, x text);
INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 3) g;
INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 10) g;
SELECT ectosync.watch('a') IS NOT NULL AS a_watched, ectosync.watch('b') IS NOT NULL AS b_watched;
SELECT ectosync.wait_for_worker();

-- What changes() returns for a held value, in short (marker ids masked);
-- the values named "... own" are their role's (see below).
CREATE FUNCTION pg_temp.got(name text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
  IF name LIKE '% own' THEN PERFORM set_config('role', 'regress_reload_own', true); END IF;
  c := ectosync.changes(name);
  PERFORM set_config('role', 'none', true);
  RETURN CASE
    WHEN c -> 'patch' = '[]' THEN 'unchanged'
    WHEN c #>> '{patch,0,path}' = '' THEN
      'whole, reloaded: ' ||
      coalesce(regexp_replace(c ->> 'reloaded', '[0-9a-f]{16}:[0-9]+', '<id>', 'g'), '(no reason)')
    ELSE 'patched: ' || (c -> 'patch')::text
  END;
END $$;
-- What sync() does with every logged event since a value's seq.
CREATE FUNCTION pg_temp.try_apply(v jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
  r := regress.apply(v);
  RETURN CASE WHEN r - 'seq' = v - 'seq' THEN 'unchanged' WHEN r - 'seq' = regress.fresh(v) - 'seq' THEN 'synced'
              ELSE 'WRONG: ' || r::text END;
EXCEPTION WHEN SQLSTATE 'ZE001' THEN
  DECLARE d text;
  BEGIN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN 'ZE001: ' || regexp_replace(d, '[0-9a-f]{16}:[0-9]+', '<id>', 'g');
  END;
END $$;

-- Held values: shared ones (held_shared.hpp), the session's own ones
-- (row level security applies to their role: never shared), and
-- stateless values.
SELECT ectosync.hold('a', 'a', listen => false) IS NOT NULL AS held;
SELECT ectosync.hold('b', 'b', listen => false) IS NOT NULL AS held;
CREATE ROLE regress_reload_own;
GRANT USAGE ON SCHEMA reload_scope TO regress_reload_own;
GRANT SELECT ON a, b TO regress_reload_own;
ALTER TABLE a ENABLE ROW LEVEL SECURITY;
ALTER TABLE b ENABLE ROW LEVEL SECURITY;
CREATE POLICY every_row ON a TO regress_reload_own USING (true);
CREATE POLICY every_row ON b TO regress_reload_own USING (true);
-- (the worker has logged the RELOAD markers of what came before: of
-- roles made or dropped too, which reach every value under policies)
SELECT ectosync.wait_for_worker() AS settled \gset
SET ROLE regress_reload_own;
SELECT ectosync.hold('a own', 'a', '[]', '{"id": 1}', listen => false) IS NOT NULL AS held;
SELECT ectosync.hold('b own', 'b', '[]', '{"id": 1}', listen => false) IS NOT NULL AS held;
SELECT name, shared_by IS NOT NULL AS shared FROM ectosync.held() ORDER BY name;
RESET ROLE;
-- (each role lists its own)
SELECT name, shared_by IS NOT NULL AS shared FROM ectosync.held() ORDER BY name;
CREATE TEMP TABLE v AS SELECT ectosync.load('a') AS a, ectosync.load('b') AS b;

-- A bulk statement on b: RELOAD for b only.
SET ectosync.max_xact_events = 5;
UPDATE b SET x = x || '!';
RESET ectosync.max_xact_events;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b;
SELECT pg_temp.got('b own') AS b_own;
SELECT pg_temp.try_apply(a) AS a, pg_temp.try_apply(b) AS b FROM v;
-- (sync() leaves the rows of a value of another table as they were, and
-- moves its seq past the marker: every event up to it was looked at)
SELECT (regress.apply(a) ->> 'seq')::bigint > (a ->> 'seq')::bigint AS a_seq_moved FROM v;

-- a's own changes still reach its holders
UPDATE a SET x = 'one' WHERE id = 1;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b, pg_temp.got('b own') AS b_own;
UPDATE v SET a = regress.apply(a), b = ectosync.load('b');

-- TRUNCATE of b: RELOAD for b only.
TRUNCATE b;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b;
SELECT pg_temp.got('b own') AS b_own;
SELECT pg_temp.try_apply(a) AS a, pg_temp.try_apply(b) AS b FROM v;
UPDATE v SET b = ectosync.load('b');

-- Both in one transaction: one marker, both reasons.
BEGIN;
SET LOCAL ectosync.max_xact_events = 5;
INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 10) g;
TRUNCATE b;
INSERT INTO b SELECT g, 'new b' || g FROM generate_series(1, 10) g;
COMMIT;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b;
SELECT pg_temp.try_apply(b) AS b FROM v;
SELECT pg_temp.got('b own') AS b_own;
UPDATE v SET b = ectosync.load('b');

-- TRUNCATE of more tables in one statement than the gap set holds (64,
-- event_log.cpp): each table gets a marker of its own, and the values of
-- the others are left alone.  (They were told to reload, every one, at
-- each such statement: a role could do that with tables of its own.)
SELECT format('CREATE TABLE many_%s (id int PRIMARY KEY)', g) FROM generate_series(1, 65) g \gexec
SELECT count(ectosync.watch(format('many_%s', g)::regclass)) AS watched FROM generate_series(1, 65) g;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT 'TRUNCATE ' || string_agg(format('many_%s', g), ', ') FROM generate_series(1, 65) g \gexec
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b, pg_temp.got('b own') AS b_own;
SELECT pg_temp.try_apply(a) AS a, pg_temp.try_apply(b) AS b FROM v;
-- ... and so does row level security turned on for as many tables in one
-- transaction: the values under row level security of the others are
-- left alone.
DO $$ BEGIN
  FOR g IN 1..65 LOOP EXECUTE format('ALTER TABLE many_%s ENABLE ROW LEVEL SECURITY', g); END LOOP;
END $$;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b, pg_temp.got('b own') AS b_own;
-- ... and so does one transaction whose events do not fit in the queue
-- (8 MB: some 10 MB of 1.5 kB keys over 65 tables): a marker per table.
SELECT format('CREATE TABLE wide_%s (k text PRIMARY KEY)', g) FROM generate_series(1, 65) g \gexec
SELECT count(ectosync.watch(format('wide_%s', g)::regclass)) AS watched FROM generate_series(1, 65) g;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT events_dropped AS dropped_before FROM ectosync.stats \gset
BEGIN;
SET LOCAL ectosync.max_xact_events = 100000;
DO $$ BEGIN
  FOR t IN 1..65 LOOP
    EXECUTE format('INSERT INTO wide_%s SELECT g || repeat(''k'', 1500) FROM generate_series(1, 100) g', t);
  END LOOP;
END $$;
COMMIT;
SELECT events_dropped > :dropped_before AS dropped FROM ectosync.stats;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b, pg_temp.got('b own') AS b_own;
SELECT count(ectosync.unwatch(format('wide_%s', g)::regclass)) AS unwatched
  FROM generate_series(1, 65) g;
SELECT format('DROP TABLE wide_%s', g) FROM generate_series(1, 65) g \gexec
SELECT count(ectosync.unwatch(format('many_%s', g)::regclass)) AS unwatched
  FROM generate_series(1, 65) g;
SELECT format('DROP TABLE many_%s', g) FROM generate_series(1, 65) g \gexec

-- watch() of an unrelated new table reloads nothing; a value of it
-- follows its changes.
CREATE TABLE c (id int PRIMARY KEY, x text);
INSERT INTO c VALUES (1, 'c1');
SELECT ectosync.watch('c') IS NOT NULL AS c_watched;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own;
SELECT pg_temp.got('b') AS b, pg_temp.got('b own') AS b_own;
SELECT pg_temp.try_apply(a) AS a, pg_temp.try_apply(b) AS b FROM v;
SELECT ectosync.hold('c', 'c', listen => false) -> 'rows' AS c;
UPDATE c SET x = 'c one' WHERE id = 1;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('c') AS c, pg_temp.got('a') AS a;

-- Capture of b stops and starts again: b changed unseen meanwhile, so the
-- values that hold b reload (and say why: the first marker, of the stop,
-- reaches them; sql_tests/13_captured.sql); the others stay.
SELECT ectosync.unwatch('b');
UPDATE b SET x = 'changed while unwatched' WHERE id = 1;
SELECT ectosync.watch('b') IS NOT NULL AS b_watched;
SELECT ectosync.wait_for_worker();
SELECT pg_temp.got('a') AS a, pg_temp.got('a own') AS a_own, pg_temp.got('c') AS c;
SELECT pg_temp.got('b') AS b;
SELECT pg_temp.got('b own') AS b_own;
SELECT pg_temp.try_apply(a) AS a, pg_temp.try_apply(b) AS b FROM v;
SELECT (SELECT jsonb_path_query_array(ectosync.load('b'), '$.rows[0].x')) AS b_1;

SELECT ectosync.release(name) FROM ectosync.held() WHERE name NOT LIKE '% own' ORDER BY name;
SET ROLE regress_reload_own;
SELECT ectosync.release('a own'), ectosync.release('b own');
RESET ROLE;
SELECT ectosync.unwatch('a');
SELECT ectosync.unwatch('b');
SELECT ectosync.unwatch('c');
RESET search_path;
DROP SCHEMA reload_scope CASCADE;
DROP OWNED BY regress_reload_own;
DROP ROLE regress_reload_own;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
