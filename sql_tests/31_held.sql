-- Values held in the session: hold() keeps the value in this backend, and
-- changes() returns only what changed since, as a JSON Patch (RFC 6902),
-- so a client never sends its value back.  The client's copy, patched,
-- equals a fresh load.  (The tests call hold(..., listen => false): with
-- its LISTEN, notifications would be printed here.)
CREATE SCHEMA held_test;
SET search_path = held_test, public;
SET client_min_messages = warning;
CREATE TABLE posts (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE tags (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE posts_tags (post_id int REFERENCES posts ON DELETE CASCADE,
                         tag_id int REFERENCES tags ON DELETE CASCADE,
                         PRIMARY KEY (post_id, tag_id));
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO posts VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO tags VALUES (10, 'pg'), (11, 'c++');
INSERT INTO posts_tags VALUES (1, 10), (2, 10), (2, 11);
SELECT ectosync.watch('posts', '["tags"]') IS NOT NULL AS watched;
SELECT ectosync.watch('notes') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker();

-- The client keeps what hold() returned (version 0) ...
CREATE TEMP TABLE client (copy jsonb, version bigint);
INSERT INTO client SELECT ectosync.hold('posts', 'posts', '["tags"]', listen => false), 0;
SELECT jsonb_pretty(copy -> 'rows') AS rows FROM client;
-- ... and a helper that asks for changes, shows them, and applies them.
-- ("seq": every event up to it is reflected; later notifications of
-- events up to it need no call.)
CREATE FUNCTION pg_temp.step()
  RETURNS TABLE (version bigint, patch jsonb, equal_to_a_fresh_load boolean, seq_is_the_last boolean)
LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
  PERFORM ectosync.wait_for_worker();
  SELECT ectosync.changes('posts', client.version) INTO c FROM client;
  UPDATE client SET copy = regress.patch(copy, c -> 'patch'),
                    version = (c ->> 'version')::bigint;
  RETURN QUERY SELECT client.version, c -> 'patch',
                      (copy - 'seq') = (ectosync.load('posts', '["tags"]') - 'seq'),
                      (c ->> 'seq')::bigint = (SELECT last_seq FROM ectosync.stats) FROM client;
END $$;

-- Nothing happened: an empty patch, the version stays.
SELECT * FROM pg_temp.step();
-- A column of a joined row.
UPDATE tags SET name = 'postgres' WHERE id = 10;
SELECT * FROM pg_temp.step();
-- A join row: a tag enters a post's list, at its place by primary key.
INSERT INTO posts_tags VALUES (1, 11);
SELECT * FROM pg_temp.step();
-- Several changes between two calls: one patch covers them all.
BEGIN;
INSERT INTO posts VALUES (4, 'four');
DELETE FROM posts WHERE id = 2;
UPDATE posts SET title = 'three, edited' WHERE id = 3;
COMMIT;
SELECT * FROM pg_temp.step();
-- A table the value does not hold: nothing to send.
INSERT INTO notes VALUES (1, 'unrelated');
SELECT * FROM pg_temp.step();

-- A client that missed a reply asks with an older version: it gets the
-- whole value ("path": "", the RFC's whole document).
UPDATE posts SET title = 'one, edited' WHERE id = 1;
SELECT ectosync.wait_for_worker();
CREATE TEMP TABLE reply AS SELECT ectosync.changes('posts', 1) AS c;
SELECT c -> 'version' AS version, c #>> '{patch,0,op}' AS op, c #>> '{patch,0,path}' AS path,
       (c #> '{patch,0,value}') - 'seq' = ectosync.load('posts', '["tags"]') - 'seq' AS whole_value
  FROM reply;
UPDATE client SET copy = regress.patch(copy, c -> 'patch'), version = (c ->> 'version')::bigint
  FROM reply;

-- A RELOAD marker of a table the value holds (a transaction past
-- ectosync.max_xact_events): changes() reloads the value itself.
SET ectosync.max_xact_events = 2;
UPDATE tags SET name = name || '!';
INSERT INTO posts_tags VALUES (3, 10), (3, 11), (4, 10);
RESET ectosync.max_xact_events;
SELECT version, patch #>> '{0,op}' AS op, patch #>> '{0,path}' AS path, equal_to_a_fresh_load
  FROM pg_temp.step();

-- The worker notifies a held value's own channel only for the events that
-- may change it.  Post 1 alone, with its tags:
SELECT ectosync.hold('post 1', 'posts', '["tags"]', '{"id": 1}', listen => false) #> '{rows,0,tags}'
  AS tags_of_post_1;
CREATE FUNCTION pg_temp.notified(name text) RETURNS bigint LANGUAGE sql AS $$
  SELECT ectosync.wait_for_worker() AND true;
  SELECT notifications FROM ectosync.held() WHERE held.name = notified.name
$$;
CREATE TEMP TABLE seen AS SELECT pg_temp.notified('post 1') AS n;
CREATE FUNCTION pg_temp.new_notifications() RETURNS bigint LANGUAGE sql AS $$
  WITH now AS (SELECT pg_temp.notified('post 1') AS n)
  UPDATE seen SET n = now.n FROM now RETURNING now.n - (SELECT n FROM seen)
$$;
UPDATE posts SET title = 'three, again' WHERE id = 3;    -- another post
SELECT pg_temp.new_notifications() AS notified;
INSERT INTO tags VALUES (12, 'unused');                  -- a tag post 1 lacks
SELECT pg_temp.new_notifications() AS notified;
INSERT INTO posts_tags VALUES (4, 12);                   -- another post's join row
SELECT pg_temp.new_notifications() AS notified;
UPDATE tags SET name = 'c++17' WHERE id = 11;            -- a tag of post 1
SELECT pg_temp.new_notifications() AS notified;
INSERT INTO posts_tags VALUES (1, 12);                   -- post 1 gets a tag
SELECT pg_temp.new_notifications() AS notified;
-- Now that post 1 has tag 12, its changes matter too (the interest grew
-- when changes() patched the value).
SELECT patch FROM jsonb_to_record(ectosync.changes('post 1')) AS r(patch jsonb);
UPDATE tags SET name = 'used' WHERE id = 12;
SELECT pg_temp.new_notifications() AS notified;
UPDATE posts SET title = 'one, again' WHERE id = 1;      -- post 1 itself
SELECT pg_temp.new_notifications() AS notified;
SELECT ectosync.release('post 1');

-- wait_changes() returns as soon as the value changed (here: a change
-- committed by another session while it waits), or an empty patch at its
-- timeout.
SELECT ectosync.hold('post 2', 'posts', '[]', '{"id": 2}', listen => false) -> 'rows' AS post_2;
SELECT current_database() AS db \gset
\setenv PGDATABASE :db
\! (sleep 0.3; psql -X -q -c "INSERT INTO held_test.posts VALUES (2, 'two, back')") >/dev/null 2>&1 &
SELECT c -> 'patch' AS patch, c -> 'version' AS version, c -> 'reloaded' AS reloaded
  FROM (SELECT ectosync.wait_changes('post 2', 0, 30000) AS c) s;
SELECT c -> 'patch' AS patch, c -> 'version' AS version
  FROM (SELECT ectosync.wait_changes('post 2', 1, 50) AS c) s;
SELECT ectosync.wait_changes('post 2', 1, -1);
SELECT ectosync.release('post 2');

-- A value of the session's own has one memory context, however many calls
-- made new values (the old ones went with their contexts); a shared value
-- has none.  (This one is the session's own since changes() ran in the
-- transaction of CREATE TABLE AS above: a transaction with an xid may read
-- what others cannot, a schema change for one.)  Either way the session's
-- memory stays as it was.
SELECT count(*) AS held_value_contexts,
       (SELECT count(*) FROM ectosync.held() WHERE shared_by IS NULL) AS values_of_its_own
  FROM pg_backend_memory_contexts WHERE name = 'ecto_sync held value';
SELECT sum(total_bytes) AS ecto_sync_bytes FROM pg_backend_memory_contexts
 WHERE name LIKE 'ecto_sync%' \gset
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    UPDATE held_test.posts SET title = 'edited ' || i WHERE id = 1;
    COMMIT;
    PERFORM ectosync.wait_for_worker();
    PERFORM ectosync.changes('posts');
  END LOOP;
END $$;
SELECT count(*) FILTER (WHERE name = 'ecto_sync held value') AS held_value_contexts,
       sum(total_bytes) - :ecto_sync_bytes < 64 * 1024 AS small
  FROM pg_backend_memory_contexts WHERE name LIKE 'ecto_sync%';
UPDATE client SET copy = ectosync.load('posts', '["tags"]'),
                  version = (SELECT version FROM ectosync.held() WHERE name = 'posts');

-- What the session holds.
SELECT name, tbl, assocs, filter, version, bytes > 0 AS has_bytes, channel LIKE 'ectosync_held_%' AS own_channel
  FROM ectosync.held();

-- A held value is kept in parts: runs of root rows of about
-- ectosync.held_part_size (16 kB), so that a change in a large value
-- rewrites the parts it reaches, not the whole value.  With parts of one
-- row each, the patches are the same as ever:
SET ectosync.held_part_size = 1;
INSERT INTO posts SELECT i, 'post ' || i FROM generate_series(10, 15) i;
INSERT INTO posts_tags VALUES (11, 12), (13, 12), (15, 12);
SELECT ectosync.wait_for_worker();
CREATE TEMP TABLE parted (copy jsonb, version bigint);
INSERT INTO parted SELECT ectosync.hold('parted', 'posts', '["tags"]', listen => false), 0;
CREATE FUNCTION pg_temp.parted_step()
  RETURNS TABLE (ops text, parts int, equal_to_a_fresh_load boolean)
LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
  PERFORM ectosync.wait_for_worker();
  SELECT ectosync.changes('parted', parted.version) INTO c FROM parted;
  UPDATE parted SET copy = regress.patch(copy, c -> 'patch'),
                    version = (c ->> 'version')::bigint;
  RETURN QUERY SELECT (SELECT string_agg((o ->> 'op') || ' ' || (o ->> 'path'), ', ')
                        FROM jsonb_array_elements(c -> 'patch') o), h.parts,
                      (copy - 'seq') = (ectosync.load('posts', '["tags"]') - 'seq')
                 FROM parted, ectosync.held() h WHERE h.name = 'parted';
END $$;
SELECT parts FROM ectosync.held() WHERE name = 'parted';
-- a row in the middle
UPDATE posts SET title = 'twelve' WHERE id = 12;
SELECT * FROM pg_temp.parted_step();
-- new rows between two parts, below the first, past the last
INSERT INTO posts VALUES (0, 'zero'), (5, 'five'), (20, 'twenty');
SELECT * FROM pg_temp.parted_step();
-- rows that leave (their parts go), and a row whose key moves across parts
BEGIN;
DELETE FROM posts WHERE id IN (0, 12);
UPDATE posts SET id = 17 WHERE id = 10;
COMMIT;
SELECT * FROM pg_temp.parted_step();
-- a tag of several posts: several parts in one event
UPDATE tags SET name = 'shared' WHERE id = 12;
SELECT * FROM pg_temp.parted_step();
-- a client that missed a reply gets the whole value, put together from
-- its parts; a RELOAD marker makes changes() load it again, in parts
UPDATE posts SET title = 'eleven' WHERE id = 11;
SELECT ectosync.wait_for_worker();
SELECT c #>> '{patch,0,path}' = '' AS whole,
       (c #> '{patch,0,value}') - 'seq' = ectosync.load('posts', '["tags"]') - 'seq' AS equal_to_a_fresh_load
  FROM (SELECT ectosync.changes('parted', 0) AS c) r;
UPDATE parted SET copy = ectosync.load('posts', '["tags"]'),
                  version = (SELECT version FROM ectosync.held() WHERE name = 'parted');
SET ectosync.max_xact_events = 1;
UPDATE posts SET title = title || '!' WHERE id IN (13, 14);
RESET ectosync.max_xact_events;
SELECT * FROM pg_temp.parted_step();
-- back to the default size: small parts merge at the next change
RESET ectosync.held_part_size;
DELETE FROM posts WHERE id = 20;
SELECT * FROM pg_temp.parted_step();
SELECT ectosync.release('parted');

-- Sessions that hold the same value (the same table, assocs and filter)
-- share it: it is kept once, in shared memory
-- (ectosync.held_shared_memory), each change is applied once, by whichever
-- session asks first, and each session answers its client from the
-- patches published since the client's version.  One session holding the
-- value twice shows it; another filter is another value.
SELECT jsonb_array_length(ectosync.hold('first', 'posts', '["tags"]', listen => false) -> 'rows') AS rows,
       jsonb_array_length(ectosync.hold('second', 'posts', '["tags"]', listen => false) -> 'rows') AS rows,
       jsonb_array_length(ectosync.hold('mine', 'posts', '["tags"]', '{"title": "one"}', listen => false) -> 'rows') AS filtered_rows,
       jsonb_array_length(ectosync.hold('mine, too', 'posts', '["tags"]', '{"title": "one"}', listen => false) -> 'rows') AS filtered_rows,
       jsonb_array_length(ectosync.hold('other', 'posts', '["tags"]', '{"title": "two"}', listen => false) -> 'rows') AS filtered_rows;
SELECT name, shared_by, version FROM ectosync.held() WHERE name IN ('first', 'second', 'mine', 'mine, too', 'other') ORDER BY name;
UPDATE posts SET title = 'shared' WHERE id = 2;
SELECT ectosync.wait_for_worker();
SELECT 'first' AS name, c -> 'patch' AS patch, c -> 'version' AS version,
       c -> 'events' = jsonb_build_array((c ->> 'seq')::bigint) AS events
  FROM (SELECT ectosync.changes('first', 0) AS c) s  -- applies the event
UNION ALL
SELECT 'second', c -> 'patch', c -> 'version', c -> 'events' = jsonb_build_array((c ->> 'seq')::bigint)
  FROM (SELECT ectosync.changes('second', 0) AS c) s  -- reads the patch
UNION ALL
SELECT 'first, again', c -> 'patch', c -> 'version', c ? 'events'
  FROM (SELECT ectosync.changes('first', 1) AS c) s;
-- a client that missed a reply gets the whole value
SELECT c ->> 'version' AS version, c #>> '{patch,0,path}' = '' AS whole
  FROM (SELECT ectosync.changes('second', 0) AS c) s;
-- the last session to release it frees it
SELECT ectosync.release('first');
SELECT name, shared_by, version FROM ectosync.held() WHERE name IN ('second', 'mine') ORDER BY name;
-- A transaction that changed a value's table reads its own uncommitted
-- rows: a value that read them would keep them if it rolled back, and no
-- event would take them out.  hold(), changes(), wait_changes() and sync()
-- refuse it ...
UPDATE posts SET title = 'committed' WHERE id = 2;
SELECT ectosync.wait_for_worker();
BEGIN;
UPDATE posts SET title = 'never committed' WHERE id = 2;
SELECT ectosync.changes('second', 1);
ROLLBACK;
BEGIN;
UPDATE posts SET title = 'never committed' WHERE id = 2;
SELECT count(*) FROM ectosync.wait_changes(0);
ROLLBACK;
BEGIN;
UPDATE posts SET title = 'never committed' WHERE id = 2;
SELECT ectosync.hold('third', 'posts');
ROLLBACK;
BEGIN;
UPDATE posts SET title = 'never committed' WHERE id = 2;
SELECT ectosync.sync(copy, (SELECT epoch || ':' || last_seq FROM ectosync.stats)) FROM client;
ROLLBACK;
-- ... and a change not yet captured, in the running statement, too.
WITH moved AS (UPDATE posts SET title = 'never committed' WHERE id = 2 RETURNING id)
SELECT ectosync.changes('second', 1) FROM moved;
-- After the rollbacks the value has the committed title.
SELECT ectosync.changes('second', 1) -> 'patch' AS patch;
SELECT name, shared_by FROM ectosync.held() WHERE name = 'second';
-- A transaction that wrote other tables only may call changes() (its
-- value goes on as the session's own).
UPDATE posts SET title = 'committed, again' WHERE id = 2;
SELECT ectosync.wait_for_worker();
BEGIN;
CREATE TEMP TABLE unrelated AS SELECT 1 AS x;
SELECT ectosync.changes('second', 2) -> 'patch' AS patch;
COMMIT;
-- Under a transaction snapshot a value could not say which events it
-- reflects (a row read then would stay in it for good): changes() and
-- sync() refuse it, as load() does.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ectosync.changes('second', 1);
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM ectosync.wait_changes(0);
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ectosync.sync(copy, 'not even read') FROM client;
ROLLBACK;
-- A filtered value shared: the row that enters it, once for both.
UPDATE posts SET title = 'one' WHERE id = 3;
SELECT ectosync.wait_for_worker();
SELECT c -> 'patch' AS patch, c -> 'version' AS version
  FROM (SELECT ectosync.changes('mine', 0) AS c) s
UNION ALL
SELECT c -> 'patch', c -> 'version' FROM (SELECT ectosync.changes('mine, too', 0) AS c) s;
SELECT ectosync.changes('other', 0) -> 'patch' AS unchanged;
-- A name that leaves the shared value (here: in a transaction with an xid)
-- after another name moved it on was sent none of the patches between:
-- its next reply is the whole value, though its caller names no version.
SELECT ectosync.hold('behind', 'posts', '["tags"]', '{"title": "one"}', listen => false) IS NOT NULL AS held,
       ectosync.hold('ahead', 'posts', '["tags"]', '{"title": "one"}', listen => false) IS NOT NULL AS held;
UPDATE tags SET name = 'pg, renamed' WHERE id = 10;
SELECT ectosync.wait_for_worker();
SELECT c -> 'version' AS version FROM (SELECT ectosync.changes('ahead') AS c) s;
UPDATE tags SET name = 'c++, renamed' WHERE id = 11;
SELECT ectosync.wait_for_worker();
BEGIN;
SELECT pg_catalog.pg_current_xact_id() IS NOT NULL AS has_xid;
SELECT c -> 'version' AS version, c #>> '{patch,0,path}' = '' AS whole,
       c #> '{patch,0,value,rows}' = ectosync.load('posts', '["tags"]', '{"title": "one"}') -> 'rows' AS fresh
  FROM (SELECT ectosync.changes('behind') AS c) s;
COMMIT;
SELECT name, shared_by, version FROM ectosync.held() WHERE name IN ('behind', 'ahead') ORDER BY name;
SELECT ectosync.release('behind'), ectosync.release('ahead');
-- A name that leaves a shared value (here: row level security comes to
-- apply to its role) goes on with a value of its own, whose interest it
-- publishes: a wait with nothing to do sleeps to its timeout.
CREATE ROLE regress_ectosync_left;
GRANT USAGE ON SCHEMA held_test TO regress_ectosync_left;
GRANT SELECT ON posts, tags, posts_tags TO regress_ectosync_left;
SET ROLE regress_ectosync_left;
SELECT ectosync.hold('left', 'posts', '["tags"]', '{"title": "one"}', listen => false) IS NOT NULL AS held;
RESET ROLE;
ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY all_tags ON tags FOR SELECT TO regress_ectosync_left USING (true);
SET ROLE regress_ectosync_left;
SELECT c -> 'version' AS version, c -> 'reloaded' AS why FROM (SELECT ectosync.changes('left', 0) AS c) s;
SELECT name, shared_by FROM ectosync.held() WHERE name IN ('mine', 'left') ORDER BY name;
RESET ROLE;
SELECT regress.sleeps() AS s0, regress.cpu_ticks() AS t0 \gset
SET ROLE regress_ectosync_left;
SELECT ectosync.wait_changes('left', 1, 1000) -> 'patch' AS nothing;
SELECT ectosync.release('left');
RESET ROLE;
SELECT regress.sleeps() - :s0 < 30 AS slept, regress.cpu_ticks() - :t0 < 30 AS idle;
DROP POLICY all_tags ON tags;
ALTER TABLE tags DISABLE ROW LEVEL SECURITY;
DROP OWNED BY regress_ectosync_left;
DROP ROLE regress_ectosync_left;
SELECT ectosync.release('mine, too'), ectosync.release('other');
SELECT ectosync.release('second'), ectosync.release('mine');
-- Row level security on a table of the value: never shared.
ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
CREATE ROLE regress_ectosync_rls;
GRANT USAGE ON SCHEMA held_test TO regress_ectosync_rls;
GRANT SELECT ON posts, tags, posts_tags TO regress_ectosync_rls;
CREATE POLICY all_tags ON tags FOR SELECT TO regress_ectosync_rls USING (true);
SET ROLE regress_ectosync_rls;
SELECT jsonb_array_length(ectosync.hold('rls', 'posts', '["tags"]', listen => false) -> 'rows') AS rows;
SELECT name, shared_by FROM ectosync.held();
SELECT ectosync.release('rls');
RESET ROLE;
DROP OWNED BY regress_ectosync_rls;
DROP ROLE regress_ectosync_rls;
ALTER TABLE tags DISABLE ROW LEVEL SECURITY;

-- Another role may not read through it: each role has names of its own.
-- After SET ROLE (a hub connection that switches roles per request), the
-- other role neither reads, lists, releases nor replaces the value, nor
-- learns that its name is taken.
CREATE ROLE regress_ectosync_held;
GRANT USAGE ON SCHEMA held_test TO regress_ectosync_held;
GRANT SELECT ON notes TO regress_ectosync_held;
SET ROLE regress_ectosync_held;
\set VERBOSITY terse
SELECT ectosync.changes('posts', 0);
\set VERBOSITY default
SELECT count(*) AS listed FROM ectosync.held();
SELECT ectosync.release('posts') AS released;
-- its own value under that name
SELECT jsonb_array_length(ectosync.hold('posts', 'notes', listen => false) -> 'rows') > 0 AS held;
SELECT name, tbl FROM ectosync.held();
RESET ROLE;
SELECT tbl FROM ectosync.held() WHERE name = 'posts';
SELECT ectosync.changes('posts') ? 'version' AS own_value;
SET ROLE regress_ectosync_held;
SELECT ectosync.release('posts') AS released;
RESET ROLE;
SELECT count(*) AS still_held FROM ectosync.held() WHERE name = 'posts' AND tbl = 'posts'::regclass;
REVOKE SELECT ON notes FROM regress_ectosync_held;
-- Nor share a value with it: held().shared_by would tell each which
-- lists the other's sessions hold.
GRANT SELECT ON notes TO regress_ectosync_held;
SELECT ectosync.hold('by me', 'notes', listen => false) IS NOT NULL AS held;
SET ROLE regress_ectosync_held;
SELECT ectosync.hold('by them', 'notes', listen => false) IS NOT NULL AS held;
SELECT name, shared_by FROM ectosync.held() WHERE name = 'by them';
SELECT ectosync.release('by them');
RESET ROLE;
SELECT name, shared_by FROM ectosync.held() WHERE name = 'by me';
SELECT ectosync.release('by me');
DROP OWNED BY regress_ectosync_held;
DROP ROLE regress_ectosync_held;

-- A filter given otherwise than values carry it (a uuid in capitals): the
-- value is held for it as to_jsonb writes it, so the events of its rows
-- (which carry the key in small letters) reach it.
CREATE TABLE cards (id uuid PRIMARY KEY, owner uuid NOT NULL, title text);
INSERT INTO cards VALUES ('00000000-0000-0000-0000-00000000000a',
                          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'one');
SELECT ectosync.watch('cards') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker() AS drained;
SELECT jsonb_array_length(ectosync.hold('cards', 'cards', '[]',
         '{"owner": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}', listen => false) -> 'rows') AS rows;
SELECT filter FROM ectosync.held() WHERE name = 'cards';
INSERT INTO cards VALUES ('00000000-0000-0000-0000-00000000000b',
                          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'two');
SELECT ectosync.wait_for_worker() AS drained;
SELECT name, jsonb_path_query_array(patch, '$[*].value.title') AS entered
  FROM ectosync.wait_changes(5000) WHERE name = 'cards';
SELECT ectosync.release('cards');
SELECT ectosync.unwatch('cards');

-- A hold() is undone when its transaction, or the savepoint it ran under,
-- rolls back, as its LISTEN is: a value kept without its LISTEN would
-- wait for notifications that never come, and fall behind unseen.
BEGIN;
SELECT jsonb_array_length(ectosync.hold('rolled back', 'posts', '["tags"]') -> 'rows') AS rows;
ROLLBACK;
SELECT ectosync.changes('rolled back', 0);
BEGIN;
SELECT jsonb_array_length(ectosync.hold('kept', 'notes', listen => false) -> 'rows') AS rows;
SAVEPOINT s;
SELECT jsonb_array_length(ectosync.hold('kept', 'posts', listen => false) -> 'rows') AS rows;
SELECT jsonb_array_length(ectosync.hold('in savepoint', 'notes', listen => false) -> 'rows') AS rows;
ROLLBACK TO SAVEPOINT s;
SAVEPOINT t;
SELECT jsonb_array_length(ectosync.hold('in released savepoint', 'notes', listen => false) -> 'rows')
    AS rows;
RELEASE SAVEPOINT t;
DO $$ BEGIN
  PERFORM ectosync.hold('in failed block', 'notes', listen => false);
  PERFORM 1 / 0;
EXCEPTION WHEN division_by_zero THEN NULL;
END $$;
COMMIT;
-- ('kept' held again in the savepoint replaced the first one: both went)
SELECT name, tbl FROM ectosync.held() WHERE name <> 'posts' ORDER BY name;
SELECT ectosync.release('in released savepoint');
-- Two names of one shared value, for the next section.
SELECT count(*) AS held FROM (VALUES ('lost a'), ('lost b')) n(name),
       ectosync.hold(n.name, 'notes', listen => false) v;
SELECT name, shared_by IS NOT NULL AS shared FROM ectosync.held() WHERE name LIKE 'lost%'
 ORDER BY name;

-- A reply moves its value on.  One that an error throws away (here the
-- statement's own; a cancel or a lock_timeout in the call, as well) never
-- reached the client: the value's next reply is the whole value, at the
-- next call, though nothing changed since.
SELECT equal_to_a_fresh_load FROM pg_temp.step(); -- (the client is up to date)
UPDATE posts SET title = 'one, lost' WHERE id = 1;
INSERT INTO notes VALUES (2, 'lost too');
SELECT ectosync.wait_for_worker() AS drained;
SELECT name FROM ectosync.wait_changes(5000) WHERE 1 / (length(name) - length(name)) = 1;
-- (the names of the shared value too: the second was answered as the
-- first was)
SELECT name, patch -> 0 ->> 'op' AS op, patch -> 0 ->> 'path' AS path
  FROM ectosync.wait_changes(0) ORDER BY name;
SELECT count(*) AS again FROM ectosync.wait_changes(0);
-- The client, which missed the lost reply, asks from its version: the
-- whole value, which equals a fresh load.
SELECT patch -> 0 ->> 'path' AS path, equal_to_a_fresh_load FROM pg_temp.step();
SELECT ectosync.release(ARRAY['lost a', 'lost b']) AS released;

-- Forgotten: changes() names what is missing.
SELECT ectosync.release('posts') AS released, ectosync.release('posts') AS again;
SELECT ectosync.changes('posts', 0);
SELECT ectosync.changes(NULL, 0);
SELECT count(*) AS held FROM ectosync.held();

-- A hub connection that switches roles per request forgets the values of
-- those roles at once (one that a failed request left held): release_all()
-- forgets those of the current role and of the roles whose privileges it
-- has, as the login role after RESET ROLE.
CREATE ROLE regress_ectosync_left;
GRANT USAGE ON SCHEMA held_test TO regress_ectosync_left;
GRANT SELECT ON notes TO regress_ectosync_left;
SELECT ectosync.hold('mine', 'notes', listen => false) IS NOT NULL AS held;
SET ROLE regress_ectosync_left;
SELECT ectosync.hold('left behind', 'notes', listen => false) IS NOT NULL AS held;
SELECT ectosync.release_all() AS released; -- (its own: not the login role's)
SELECT ectosync.hold('left behind', 'notes', listen => false) IS NOT NULL AS held;
RESET ROLE;
SELECT ectosync.release_all() AS released;
SET ROLE regress_ectosync_left;
SELECT count(*) AS still_held FROM ectosync.held();
RESET ROLE;
-- ... and those of a role dropped since, which no one can SET ROLE to
CREATE ROLE regress_ectosync_gone;
GRANT USAGE ON SCHEMA held_test TO regress_ectosync_gone;
GRANT SELECT ON notes TO regress_ectosync_gone;
SET ROLE regress_ectosync_gone;
SELECT ectosync.hold('orphan', 'notes', listen => false) IS NOT NULL AS held;
RESET ROLE;
DROP OWNED BY regress_ectosync_gone;
DROP ROLE regress_ectosync_gone;
SET ROLE regress_ectosync_left;
SELECT ectosync.release_all() AS released;
RESET ROLE;
DROP OWNED BY regress_ectosync_left;
DROP ROLE regress_ectosync_left;

RESET search_path;
SELECT ectosync.unwatch('held_test.posts');
SELECT ectosync.unwatch('held_test.notes');
DROP SCHEMA held_test CASCADE;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
