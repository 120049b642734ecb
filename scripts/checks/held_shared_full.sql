-- Run by scripts/test.sh with ectosync.held_shared_memory = 2MB: a shared
-- held value that outgrows shared memory goes on as the session's own, and
-- its client still gets every change.  Raises on any failure.
\set ON_ERROR_STOP 1
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION ecto_sync;
CREATE TABLE t (id int PRIMARY KEY, x text);
INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 10) g;
SELECT ectosync.watch('t') IS NOT NULL AS watched;
SELECT ectosync.hold('a', 't', listen => false) IS NOT NULL AS held; -- (not in a transaction that wrote)
DO $$ BEGIN
  IF (SELECT shared_by FROM ectosync.held() WHERE name = 'a') IS DISTINCT FROM 1 THEN
    RAISE 'a small value should be shared';
  END IF;
END $$;
INSERT INTO t SELECT g, repeat('y', 300) FROM generate_series(11, 9000) g; -- about 3 MB
SELECT ectosync.wait_for_worker(60000) AS caught_up;
-- (a plain SELECT: a transaction that wrote would stop sharing anyway)
SELECT ectosync.changes('a', 0) AS r \gset
CREATE TEMP TABLE reply AS SELECT :'r'::jsonb AS r;
DO $$
DECLARE
  n int := (SELECT jsonb_array_length(r -> 'patch') FROM reply);
  whole boolean := (SELECT r #>> '{patch,0,path}' = '' FROM reply);
BEGIN
  IF (SELECT shared_by FROM ectosync.held() WHERE name = 'a') IS NOT NULL THEN
    RAISE 'the value should no longer be shared';
  END IF;
  IF NOT whole AND n <> 8990 THEN
    RAISE 'expected 8990 rows added, the patch has % operations', n;
  END IF;
  IF (SELECT (r ->> 'version')::int FROM reply) <> 1 THEN RAISE 'version should be 1'; END IF;
END $$;
SELECT 'ok: a shared value that outgrew shared memory went on alone' AS held_shared_full;

-- A role's value that grows past the role's share (ectosync.max_role_share,
-- 25% of 2 MB) after it was shared goes on as its session's own too, log
-- of patches included: sharing it small does not get it more.
CREATE ROLE grower LOGIN;
CREATE TABLE u (id int PRIMARY KEY, x text);
INSERT INTO u VALUES (1, 'small');
GRANT SELECT ON u TO grower;
SELECT ectosync.watch('u') IS NOT NULL AS watched;
SET ROLE grower;
SELECT ectosync.hold('b', 'u', listen => false) IS NOT NULL AS held;
DO $$ BEGIN
  IF (SELECT shared_by FROM ectosync.held() WHERE name = 'b') IS DISTINCT FROM 1 THEN
    RAISE 'a small value of grower should be shared';
  END IF;
END $$;
RESET ROLE;
INSERT INTO u SELECT g, repeat('z', 200) FROM generate_series(2, 2500) g; -- about 600 kB
SELECT ectosync.wait_for_worker(60000) AS caught_up;
SET ROLE grower;
SELECT ectosync.changes('b', 0) IS NOT NULL AS changed;
DO $$ BEGIN
  IF (SELECT shared_by FROM ectosync.held() WHERE name = 'b') IS NOT NULL THEN
    RAISE 'a value past its role''s share should no longer be shared';
  END IF;
  IF (SELECT jsonb_array_length(ectosync.changes('b', 0) #> '{patch,0,value,rows}')) <> 2500 THEN
    RAISE 'the value should hold 2500 rows';
  END IF;
END $$;
SELECT ectosync.release('b');
RESET ROLE;
SELECT 'ok: a value past its role''s share went on alone' AS held_shared_share;

-- The same, held by a superuser too (whose share is the whole area):
-- sessions of two roles never share a value, so grower's goes on alone
-- past its share, and the superuser's stays shared.
CREATE TABLE w (id int PRIMARY KEY, x text);
INSERT INTO w VALUES (1, 'small');
GRANT SELECT ON w TO grower;
SELECT ectosync.watch('w') IS NOT NULL AS watched;
SET ROLE grower;
SELECT ectosync.hold('c', 'w', listen => false) IS NOT NULL AS held;
RESET ROLE;
SELECT ectosync.hold('s', 'w', listen => false) IS NOT NULL AS held;
INSERT INTO w SELECT g, repeat('z', 200) FROM generate_series(2, 2500) g;
SELECT ectosync.wait_for_worker(60000) AS caught_up;
SELECT ectosync.changes('s', 0) IS NOT NULL AS changed;
SET ROLE grower;
SELECT ectosync.changes('c', 0) IS NOT NULL AS changed;
DO $$ BEGIN
  IF (SELECT shared_by FROM ectosync.held() WHERE name = 'c') IS NOT NULL THEN
    RAISE 'a value past its role''s share should no longer be shared';
  END IF;
  IF (SELECT jsonb_array_length(ectosync.changes('c', 0) #> '{patch,0,value,rows}')) <> 2500 THEN
    RAISE 'the value should hold 2500 rows';
  END IF;
END $$;
SELECT ectosync.release('c');
RESET ROLE;
DO $$ BEGIN
  IF (SELECT shared_by FROM ectosync.held() WHERE name = 's') IS DISTINCT FROM 1 THEN
    RAISE 'the superuser''s value should stay shared, by itself alone';
  END IF;
  IF (SELECT jsonb_array_length(ectosync.changes('s', 0) #> '{patch,0,value,rows}')) <> 2500 THEN
    RAISE 'the value should hold 2500 rows';
  END IF;
END $$;
SELECT ectosync.release('s');
SELECT 'ok: two roles holding one shape share nothing' AS held_shared_roles;
