-- One role's commits cannot fill the database's queue: while the worker
-- has not processed them, a role's records take at most its
-- ectosync.max_role_share (25%) of ectosync.queue_size.  Past it, its
-- transactions' tables get RELOAD markers (its values reload, told why);
-- another role's changes count in an account of their own and arrive row
-- by row.  The account empties as the worker processes the records;
-- superusers are not counted.
SET client_min_messages = warning;
CREATE ROLE share_bulk LOGIN;
CREATE ROLE share_other LOGIN;
CREATE SCHEMA share_bulk AUTHORIZATION share_bulk;
CREATE SCHEMA share_other AUTHORIZATION share_other;

-- Each transaction below queues some 60% of a role's share: about 1 kB
-- per row (the key, as text), so many rows.
SELECT (pg_size_bytes(current_setting('ectosync.queue_size'))
        * current_setting('ectosync.max_role_share')::int / 100 * 6 / 10 / 1024) AS rows_per_xact \gset

SET ROLE share_bulk;
CREATE TABLE share_bulk.t (k text PRIMARY KEY);
SELECT ectosync.watch('share_bulk.t') IS NOT NULL AS watched;
SELECT ectosync.hold('bulk', 'share_bulk.t', listen => false) IS NOT NULL AS held;
RESET ROLE;
SET ROLE share_other;
CREATE TABLE share_other.t (k text PRIMARY KEY);
SELECT ectosync.watch('share_other.t') IS NOT NULL AS watched;
SELECT ectosync.hold('other', 'share_other.t', listen => false) IS NOT NULL AS held;
RESET ROLE;

-- The worker is kept from processing: a table whose json cast waits until
-- the test opens its gate (at most 4 s: the worker's reads time out at 5).
CREATE SCHEMA share_gate;
CREATE TYPE share_gate.gate AS ENUM ('shut');
CREATE TABLE share_gate.opened (at timestamptz);
CREATE FUNCTION share_gate.gate_json(share_gate.gate) RETURNS json LANGUAGE plpgsql AS $$
DECLARE
  started timestamptz := pg_catalog.clock_timestamp();
BEGIN
  -- (held until the worker's batch ends: the test can see that it waits)
  PERFORM pg_catalog.pg_advisory_xact_lock_shared(4242);
  WHILE NOT EXISTS (SELECT FROM share_gate.opened)
        AND pg_catalog.clock_timestamp() < started + interval '4 s' LOOP
    PERFORM pg_catalog.pg_sleep(0.01);
  END LOOP;
  RETURN pg_catalog.to_json($1::text);
END $$;
CREATE CAST (share_gate.gate AS json) WITH FUNCTION share_gate.gate_json(share_gate.gate);
CREATE TABLE share_gate.t (id int PRIMARY KEY, g share_gate.gate);
SELECT ectosync.watch('share_gate.t') IS NOT NULL AS watched;
SELECT ectosync.load('share_gate.t') IS NOT NULL AS used;  -- (so the worker reads its rows)
SELECT ectosync.wait_for_worker() AS drained;

-- ==== while the worker waits ====
SELECT coalesce(max(seq), 0) AS seq0 FROM ectosync._events_since(0) \gset
INSERT INTO share_gate.t VALUES (1, 'shut');
SET ROLE share_bulk;
INSERT INTO share_bulk.t SELECT 'a' || g || repeat('k', 1000) FROM generate_series(1, :rows_per_xact) g;
-- (its second transaction would take 120% of its share)
INSERT INTO share_bulk.t SELECT 'b' || g || repeat('k', 1000) FROM generate_series(1, :rows_per_xact) g;
RESET ROLE;
SET ROLE share_other;
INSERT INTO share_other.t SELECT 'a' || g || repeat('k', 1000) FROM generate_series(1, :rows_per_xact) g;
RESET ROLE;
-- (a superuser's commits are not counted: both fit)
INSERT INTO share_bulk.t SELECT 'c' || g || repeat('k', 1000) FROM generate_series(1, :rows_per_xact) g;
INSERT INTO share_bulk.t SELECT 'd' || g || repeat('k', 1000) FROM generate_series(1, :rows_per_xact) g;
-- (the worker is still held: else the test was too slow to show anything)
SELECT count(*) = 1 AS worker_held FROM pg_locks l JOIN pg_database d ON d.oid = l.database
  WHERE l.locktype = 'advisory' AND l.objid = 4242 AND l.granted
    AND d.datname = current_database();
INSERT INTO share_gate.opened VALUES (now());
SELECT ectosync.wait_for_worker(30000) AS drained;
-- What the queue took: share_bulk's first transaction and the superuser's
-- two row by row, its second as a marker; share_other's row by row.
SELECT tbl, op, CASE op WHEN 'RELOAD' THEN count(*) ELSE count(*) / :rows_per_xact END AS xacts
  FROM ectosync._events_since(:seq0) WHERE tbl IN ('share_bulk.t', 'share_other.t') GROUP BY 1, 2 ORDER BY 1, 2;

-- share_bulk's value reloads, told why; share_other's gets its rows as a
-- patch.  Both equal a fresh load.
CREATE FUNCTION pg_temp.reply(name text, version bigint) RETURNS TABLE (reloaded text, patched int)
  LANGUAGE sql AS $$
  SELECT regexp_replace(c ->> 'reloaded', '[0-9a-f]{16}:[0-9]+', '<id>', 'g'),
         jsonb_array_length(c -> 'patch')
    FROM (SELECT ectosync.changes(name, version) AS c) r $$;
-- (a version the session does not hold: the reply is the whole value)
CREATE FUNCTION pg_temp.fresh(name text, tbl regclass) RETURNS boolean LANGUAGE sql AS $$
  SELECT (ectosync.changes(name, -1) #> '{patch,0,value}') - 'seq' = ectosync.load(tbl) - 'seq' $$;
SET ROLE share_bulk;
SELECT * FROM pg_temp.reply('bulk', 0);
SELECT pg_temp.fresh('bulk', 'share_bulk.t') AS equal_to_a_fresh_load;
RESET ROLE;
SET ROLE share_other;
SELECT reloaded, patched = :rows_per_xact AS patched_row_by_row FROM pg_temp.reply('other', 0);
SELECT pg_temp.fresh('other', 'share_other.t') AS equal_to_a_fresh_load;
RESET ROLE;

-- ==== processed records leave the account ====
SET ROLE share_bulk;
SELECT (ectosync.changes('bulk', 0) ->> 'version')::bigint AS v \gset
INSERT INTO share_bulk.t SELECT 'e' || g || repeat('k', 1000) FROM generate_series(1, :rows_per_xact) g;
SELECT ectosync.wait_for_worker(30000) AS drained;
SELECT reloaded, patched = :rows_per_xact AS patched_row_by_row FROM pg_temp.reply('bulk', :v);
SELECT pg_temp.fresh('bulk', 'share_bulk.t') AS equal_to_a_fresh_load;
SELECT ectosync.release('bulk');
SELECT ectosync.unwatch('share_bulk.t');
RESET ROLE;
SET ROLE share_other;
SELECT ectosync.release('other');
SELECT ectosync.unwatch('share_other.t');
RESET ROLE;
SELECT ectosync.unwatch('share_gate.t');
DROP SCHEMA share_bulk, share_other, share_gate CASCADE;
DROP ROLE share_bulk, share_other;
