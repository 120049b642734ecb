-- Run by scripts/test.sh with ectosync.load_window = 2s: once no session
-- has used a table for that long, the worker stops reading its changed
-- rows ahead of time, and a row cached before must not be served after it
-- changed: the first call that needs it reads the table.  Raises on any
-- failure.
\set ON_ERROR_STOP 1
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION ecto_sync;
CREATE TABLE posts (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE tags (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE posts_tags (post_id int REFERENCES posts, tag_id int REFERENCES tags,
                         PRIMARY KEY (post_id, tag_id));
INSERT INTO posts VALUES (1, 'first'), (2, 'second');
INSERT INTO tags VALUES (1, 'pg');
SELECT ectosync.watch('posts', '["tags"]') IS NOT NULL AS watched;
SELECT ectosync.hold('a', 'posts', '["tags"]', listen => false) IS NOT NULL AS held;

-- The holder used the tables just now: the worker reads and caches the row.
UPDATE posts SET title = 'cached' WHERE id = 1;
SELECT ectosync.wait_for_worker() AS caught_up;
SELECT (ectosync.changes('a', 0) ->> 'version')::bigint AS v \gset
CREATE TEMP TABLE before AS SELECT rows_loaded, rows_not_loaded, cache_misses FROM ectosync.stats;

-- Nobody uses them for longer than the window; then the row changes again
-- and a new tag is linked: nothing is read, the cached title is forgotten.
SELECT pg_sleep(2.5);
UPDATE posts SET title = 'changed unseen' WHERE id = 1;
INSERT INTO posts_tags VALUES (1, 1);
SELECT ectosync.wait_for_worker() AS caught_up;
DO $$
DECLARE
  loaded bigint := (SELECT s.rows_loaded - b.rows_loaded FROM ectosync.stats s, before b);
  unread bigint := (SELECT s.rows_not_loaded - b.rows_not_loaded FROM ectosync.stats s, before b);
BEGIN
  IF loaded <> 0 OR unread <> 2 THEN
    RAISE 'expected no rows read ahead and 2 left unread, got % and %', loaded, unread;
  END IF;
END $$;

-- The holder's next call reads what it needs and equals a fresh load.
SELECT ectosync.changes('a', :v) AS r \gset
CREATE TEMP TABLE reply AS SELECT :'r'::jsonb AS r;
DO $$
DECLARE
  patch jsonb := (SELECT r -> 'patch' FROM reply);
  misses bigint := (SELECT s.cache_misses - b.cache_misses FROM ectosync.stats s, before b);
BEGIN
  IF NOT patch @> '[{"op": "replace", "path": "/rows/0/title", "value": "changed unseen"}]' THEN
    RAISE 'the held value did not get the new title: %', patch;
  END IF;
  IF NOT patch @> '[{"op": "add", "path": "/rows/0/tags/0"}]' THEN
    RAISE 'the held value did not get the new tag: %', patch;
  END IF;
  IF misses < 1 THEN
    RAISE 'expected the changed rows to be read on a cache miss';
  END IF;
END $$;
-- (a version the session does not hold: the reply is the whole value)
DO $$
DECLARE
  held jsonb := ectosync.changes('a', -1) #> '{patch,0,value,rows}';
  fresh jsonb := ectosync.load('posts', '["tags"]') -> 'rows';
BEGIN
  IF held IS DISTINCT FROM fresh THEN
    RAISE 'the held value % differs from a fresh load %', held, fresh;
  END IF;
END $$;
SELECT 'ok: rows of tables unused for ectosync.load_window are read on demand' AS result;
