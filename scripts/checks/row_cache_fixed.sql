-- Run by scripts/test.sh with ectosync.cache_size = 1MB: the row cache's
-- hash has one entry per 256 bytes of the arena (4,096 here) and never
-- more.  Rows smaller than that fill the hash before the arena; the cache
-- then evicts, instead of taking the spare shared memory that PostgreSQL's
-- lock tables need.  Raises on any failure.
\set ON_ERROR_STOP 1
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION ecto_sync;
CREATE TABLE dots (id int PRIMARY KEY);
SELECT ectosync.watch('dots') IS NOT NULL AS watched;
-- (a session uses the table: the worker reads its changed rows ahead)
SELECT ectosync.hold('dots', 'dots', listen => false) IS NOT NULL AS held;
SELECT ectosync.wait_for_worker() AS caught_up;
CREATE TEMP TABLE before AS
  SELECT (SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name IS NULL) AS anonymous,
         (SELECT cache_evictions FROM ectosync.stats) AS evictions;
-- (40 transactions of 500 rows: each below ectosync.max_xact_events)
SELECT format('INSERT INTO dots SELECT g FROM generate_series(%s, %s) g', i * 500 + 1, i * 500 + 500)
  FROM generate_series(0, 39) i \gexec
SELECT ectosync.wait_for_worker() AS caught_up;
DO $$
DECLARE
  entries bigint := (SELECT cache_entries FROM ectosync.stats);
  evicted bigint := (SELECT s.cache_evictions - b.evictions FROM ectosync.stats s, before b);
  grown bigint := (SELECT (SELECT sum(allocated_size) FROM pg_shmem_allocations
                           WHERE name IS NULL) - anonymous FROM before);
BEGIN
  IF entries > 4096 THEN
    RAISE 'the row cache has % entries, more than the 4096 of a 1 MB arena', entries;
  END IF;
  IF evicted = 0 THEN
    RAISE 'expected the full hash to evict records';
  END IF;
  IF grown > 0 THEN
    RAISE 'the row cache took % bytes of the spare shared memory', grown;
  END IF;
END $$;
SELECT ectosync.release('dots');
\echo 'ok: the hash of the row cache stays within its fixed size'
