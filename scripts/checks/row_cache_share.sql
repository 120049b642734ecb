-- Run by scripts/test.sh with ectosync.cache_size = 1MB: the cached rows
-- of one role's tables take at most its ectosync.max_role_share (25%) of
-- the row cache that other roles' rows need, counted as what its keys
-- hold now (a row changed again frees its older record).  Past it, its
-- records take free room, or its own records', never another role's:
-- they are dropped instead (its values read those rows from the tables),
-- and another role's cached rows stay, whether the role's rows are wide
-- or many.  Raises on any failure.
\set ON_ERROR_STOP 1
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION ecto_sync;
CREATE ROLE cache_small LOGIN;
CREATE ROLE cache_wide LOGIN;
CREATE SCHEMA cache_small AUTHORIZATION cache_small;
CREATE SCHEMA cache_wide AUTHORIZATION cache_wide;

SET ROLE cache_small;
CREATE TABLE cache_small.t (id int PRIMARY KEY, v text);
INSERT INTO cache_small.t SELECT g, 'v' FROM generate_series(1, 100) g;
SELECT ectosync.watch('cache_small.t') IS NOT NULL AS watched;
SELECT ectosync.hold('small', 'cache_small.t', listen => false) IS NOT NULL AS held;
RESET ROLE;

-- Ten rows of 300 bytes changed 150 times (1,500 records, over twice the
-- share if every record stayed counted): the rows its keys hold now are
-- all it takes, and its next change is still served from the cache.
SELECT format('UPDATE cache_small.t SET v = %L WHERE id BETWEEN 2 AND 11', repeat('r', 300) || g),
       'SELECT ectosync.wait_for_worker()'
  FROM generate_series(1, 150) g \gexec
SET ROLE cache_small;
SELECT (ectosync.changes('small', 0) ->> 'version')::bigint AS v \gset
UPDATE cache_small.t SET v = 'hot' WHERE id = 2;
RESET ROLE;
SELECT ectosync.wait_for_worker() AS caught_up;
CREATE TEMP TABLE hot_before AS SELECT cache_misses FROM ectosync.stats;
SET ROLE cache_small;
SELECT ectosync.changes('small', :v) AS r \gset
RESET ROLE;
CREATE TEMP TABLE hot_reply AS SELECT :'r'::jsonb AS r;
DO $$
DECLARE
  patch jsonb := (SELECT r -> 'patch' FROM hot_reply);
  misses bigint := (SELECT s.cache_misses - b.cache_misses FROM ectosync.stats s, hot_before b);
BEGIN
  IF NOT patch @> '[{"op": "replace", "path": "/rows/1/v", "value": "hot"}]' THEN
    RAISE 'cache_small''s value did not get its change: %', patch;
  END IF;
  IF misses <> 0 THEN
    RAISE 'cache_small''s changed row was not cached after many changes: % misses', misses;
  END IF;
END $$;
SELECT (r ->> 'version')::bigint AS v FROM hot_reply \gset

-- cache_small's row 1 changes: the worker reads it into the cache.
SET ROLE cache_small;
UPDATE cache_small.t SET v = 'changed' WHERE id = 1;
RESET ROLE;
SELECT ectosync.wait_for_worker() AS caught_up;

-- cache_wide changes 30 rows of 100 kB: three times the whole cache.
SET ROLE cache_wide;
CREATE TABLE cache_wide.t (id int PRIMARY KEY, v text);
SELECT ectosync.watch('cache_wide.t') IS NOT NULL AS watched;
SELECT ectosync.hold('wide', 'cache_wide.t', listen => false) IS NOT NULL AS held;
INSERT INTO cache_wide.t SELECT g, repeat('w', 100000) FROM generate_series(1, 10) g;
INSERT INTO cache_wide.t SELECT g, repeat('w', 100000) FROM generate_series(11, 20) g;
INSERT INTO cache_wide.t SELECT g, repeat('w', 100000) FROM generate_series(21, 30) g;
-- and 6,000 narrow rows: more than the cache's hash has entries (4,095)
CREATE TABLE cache_wide.many (id int PRIMARY KEY);
SELECT ectosync.watch('cache_wide.many') IS NOT NULL AS watched;
SELECT ectosync.load('cache_wide.many') IS NOT NULL AS used;
INSERT INTO cache_wide.many SELECT g FROM generate_series(1, 3000) g;
INSERT INTO cache_wide.many SELECT g FROM generate_series(3001, 6000) g;
RESET ROLE;
SELECT ectosync.wait_for_worker() AS caught_up;
CREATE TEMP TABLE before AS SELECT cache_misses FROM ectosync.stats;

-- cache_small's value gets its row from the cache: no miss.
SET ROLE cache_small;
SELECT ectosync.changes('small', :v) AS r \gset
RESET ROLE;
CREATE TEMP TABLE reply AS SELECT :'r'::jsonb AS r;
DO $$
DECLARE
  patch jsonb := (SELECT r -> 'patch' FROM reply);
  misses bigint := (SELECT s.cache_misses - b.cache_misses FROM ectosync.stats s, before b);
BEGIN
  IF NOT patch @> '[{"op": "replace", "path": "/rows/0/v", "value": "changed"}]' THEN
    RAISE 'cache_small''s value did not get its change: %', patch;
  END IF;
  IF misses <> 0 THEN
    RAISE 'cache_small''s row was evicted: % cache misses', misses;
  END IF;
END $$;

-- cache_wide's value reads what the cache did not keep, and equals a
-- fresh load.
SET ROLE cache_wide;
SELECT ectosync.changes('wide', 0) IS NOT NULL AS changed \gset
CREATE TEMP TABLE wide AS
  SELECT (ectosync.changes('wide', -1) #> '{patch,0,value}') - 'seq'
         = ectosync.load('cache_wide.t') - 'seq' AS fresh;
RESET ROLE;
DO $$
BEGIN
  IF NOT (SELECT fresh FROM wide) THEN
    RAISE 'cache_wide''s value differs from a fresh load';
  END IF;
  IF (SELECT cache_misses FROM ectosync.stats) - (SELECT cache_misses FROM before) < 28 THEN
    RAISE 'expected cache_wide''s value to read its rows past its share on misses';
  END IF;
END $$;
