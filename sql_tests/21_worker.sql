-- The worker loads each changed row once, whatever the number of values
-- that sync it, and for a join-table row it also loads the row it joins,
-- so that sync() finds everything in the cache.
CREATE SCHEMA worker_test;
SET search_path = worker_test, public;
SET client_min_messages = warning;
CREATE TABLE posts (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE tags (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE posts_tags (post_id int REFERENCES posts ON DELETE CASCADE,
                         tag_id int REFERENCES tags ON DELETE CASCADE,
                         PRIMARY KEY (post_id, tag_id));
INSERT INTO posts VALUES (1, 'one'), (2, 'two');
INSERT INTO tags VALUES (10, 'never changed since');
SELECT ectosync.watch('posts', '["tags"]') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker();

-- Three holders of the same value.
CREATE TEMP TABLE held AS
  SELECT h, ectosync.load('posts', '["tags"]') AS val FROM generate_series(1, 3) h;
-- What the worker read and the syncs found in the cache since the last
-- call, once every holder applied its events.
CREATE TEMP TABLE before AS
  SELECT rows_loaded, load_queries, cache_hits, cache_misses FROM ectosync.stats;
CREATE FUNCTION pg_temp.loads()
  RETURNS TABLE (rows_loaded bigint, load_queries bigint, cache_hits bigint, cache_misses bigint)
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE held SET val = regress.apply(val);
  RETURN QUERY SELECT s.rows_loaded - b.rows_loaded, s.load_queries - b.load_queries,
                      s.cache_hits - b.cache_hits, s.cache_misses - b.cache_misses
                 FROM ectosync.stats s, before b;
  UPDATE before SET (rows_loaded, load_queries, cache_hits, cache_misses) =
    (SELECT s.rows_loaded, s.load_queries, s.cache_hits, s.cache_misses FROM ectosync.stats s);
END $$;

-- One change: the worker reads the row once; three syncs read the cache.
UPDATE posts SET title = 'one, edited' WHERE id = 1;
SELECT * FROM pg_temp.loads();
SELECT bool_and(val - 'seq' = regress.fresh(val) - 'seq') AS all_equal_a_fresh_load FROM held;

-- A join row: the worker loads it and both rows it joins (the post and the
-- tag, which no event had loaded), so the syncs miss nothing.
INSERT INTO posts_tags VALUES (2, 10);
SELECT * FROM pg_temp.loads();
SELECT val #> '{rows,1,tags}' AS tags_of_post_2 FROM held WHERE h = 1;
SELECT bool_and(val - 'seq' = regress.fresh(val) - 'seq') AS all_equal_a_fresh_load FROM held;

-- Another join row between rows the cache holds (their own events keep
-- them current): only the join row is read.
INSERT INTO posts_tags VALUES (1, 10);
SELECT * FROM pg_temp.loads();
SELECT bool_and(val - 'seq' = regress.fresh(val) - 'seq') AS all_equal_a_fresh_load FROM held;

-- Deleted rows are read too, and found gone (no row loaded): the batch's
-- last event of a key does not say whether its row exists.  A transaction
-- becomes visible before it takes its seqs, and one that inserted the key
-- again without waiting for the delete may have come first.
BEGIN;
INSERT INTO posts VALUES (3, 'three, for a moment');
DELETE FROM posts_tags WHERE post_id = 2;
DELETE FROM posts WHERE id = 3;
COMMIT;
SELECT * FROM pg_temp.loads();
SELECT bool_and(val - 'seq' = regress.fresh(val) - 'seq') AS all_equal_a_fresh_load FROM held;

RESET search_path;
SELECT ectosync.unwatch('worker_test.posts');
DROP SCHEMA worker_test CASCADE;
