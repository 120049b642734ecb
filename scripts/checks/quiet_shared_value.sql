-- Run by scripts/test.sh with ectosync.event_log_size = 64: a shared held
-- value that no event concerned while hundreds went by (more than the log
-- keeps) gets a patch of its next change, not the whole value again.  Its
-- interest entry says which events matched it: the ones before the first
-- that did cannot change it, and are not read (before, the value read every
-- event since it was last changed, found the oldest expired, and was
-- loaded again).  Raises on any failure.
\set ON_ERROR_STOP 1
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION ecto_sync;
-- (author_id a foreign key: watch() captures it, so that the worker can
-- tell which author's value an event concerns)
CREATE TABLE authors (id int PRIMARY KEY);
CREATE TABLE posts (id int PRIMARY KEY, author_id int NOT NULL REFERENCES authors,
                    title text NOT NULL);
CREATE INDEX ON posts (author_id);
INSERT INTO authors SELECT generate_series(0, 9);
INSERT INTO posts SELECT i, i % 10, 'post ' || i FROM generate_series(1, 100) i;
SELECT ectosync.watch('posts') IS NOT NULL AS watched;
-- And a client's value of a quiet table, synced statelessly.
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'quiet');
SELECT ectosync.watch('notes') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker() AS caught_up;
CREATE TEMP TABLE quiet AS SELECT ectosync.load('notes') AS v;
SELECT ectosync.hold('author 1', 'posts', '[]', '{"author_id": 1}', listen => false) AS copy \gset
CREATE TEMP TABLE copies AS SELECT :'copy'::jsonb AS copy;
DO $$
BEGIN
  IF (SELECT shared_by FROM ectosync.held() WHERE name = 'author 1') IS NULL THEN
    RAISE 'expected the value to be shared';
  END IF;
END $$;
SELECT count(*) AS changed FROM ectosync.wait_changes(0);

-- 300 transactions of other authors' posts: 300 events, the log keeps 64.
CREATE PROCEDURE other_authors() LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..300 LOOP
    UPDATE posts SET title = 'other ' || i WHERE id = 2 + (i % 9);
    COMMIT;
  END LOOP;
END $$;
CALL other_authors();
SELECT ectosync.wait_for_worker() AS caught_up;
SELECT count(*) AS changed FROM ectosync.wait_changes(0);

-- Then two of author 1's posts in one transaction (one batch: the first
-- of the two is where reading starts).
BEGIN;
UPDATE posts SET title = 'first change' WHERE id = 11;
UPDATE posts SET title = 'second change' WHERE id = 21;
COMMIT;
SELECT ectosync.wait_for_worker() AS caught_up;
-- (into variables: a statement that writes, as CREATE TABLE AS does, has
-- an xid, and a session with one goes on with its own copy)
SELECT coalesce(reloaded, '') AS reloaded, patch FROM ectosync.wait_changes(5000)
  WHERE name = 'author 1' \gset
CREATE TEMP TABLE reply AS SELECT :'reloaded'::text AS reloaded, :'patch'::jsonb AS patch;
DO $$
DECLARE
  r reply;
BEGIN
  SELECT * INTO r FROM reply;
  IF r.reloaded <> '' THEN
    RAISE 'the value was loaded again: %', r.reloaded;
  END IF;
  IF jsonb_array_length(r.patch) <> 2 OR r.patch::text NOT LIKE '%first change%'
     OR r.patch::text NOT LIKE '%second change%' THEN
    RAISE 'expected a patch of the two titles, got %', r.patch;
  END IF;
END $$;

-- The copy, patched, equals a fresh load.
CREATE FUNCTION patched(val jsonb, patch jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  op jsonb;
BEGIN
  FOR op IN SELECT * FROM jsonb_array_elements(patch) LOOP
    IF op ->> 'op' <> 'replace' THEN
      RAISE 'unexpected operation %', op;
    END IF;
    val := jsonb_set(val, string_to_array(substr(op ->> 'path', 2), '/'), op -> 'value');
  END LOOP;
  RETURN val;
END $$;
DO $$
BEGIN
  IF (SELECT patched(c.copy, r.patch) - 'seq' FROM copies c, reply r)
     <> ectosync.load('posts', '[]', '{"author_id": 1}') - 'seq' THEN
    RAISE 'the patched copy differs from a fresh load';
  END IF;
END $$;
SELECT 'ok: a quiet shared value got a patch, not the whole value' AS result;

-- The value of notes, loaded before the 300 events: the log no longer
-- reaches its seq, and nothing tells that none of the events that left it
-- were of notes: sync() asks for a reload (ZE001), and the reload is fresh.
UPDATE notes SET body = 'changed' WHERE id = 1;
SELECT ectosync.wait_for_worker() AS caught_up;
DO $$
DECLARE
  state text;
BEGIN
  BEGIN
    PERFORM ectosync.sync(v, format('%s:%s', s.epoch, s.last_seq)) FROM quiet, ectosync.stats s;
    state := 'applied';
  EXCEPTION WHEN SQLSTATE 'ZE001' THEN
    state := 'ZE001';
  END;
  IF state <> 'ZE001' THEN
    RAISE 'a value behind the event log should be loaded again, not %', state;
  END IF;
  IF ectosync.load('notes') #>> '{rows,0,body}' <> 'changed' THEN
    RAISE 'the reload should see the change';
  END IF;
END $$;
SELECT 'ok: a stateless value behind the event log is loaded again' AS result;
