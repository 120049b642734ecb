-- Many held values on one connection: an application holds a value per
-- user screen and waits for all of them with one call.
-- ectosync.wait_changes(timeout_ms) returns a row for each value that
-- changed (what changes(name) returns, in columns), as soon as one did.
CREATE SCHEMA mv;
CREATE TABLE mv.users (id int PRIMARY KEY);
CREATE TABLE mv.posts (id int PRIMARY KEY, author_id int NOT NULL REFERENCES mv.users,
                       title text NOT NULL);
CREATE INDEX ON mv.posts (author_id);
INSERT INTO mv.users SELECT generate_series(1, 500);
INSERT INTO mv.posts SELECT i, 1 + i % 500, 'post ' || i FROM generate_series(1, 5000) i;
-- (watch() captures the old and new values of foreign key columns, so
-- that the worker can tell which user's value a change concerns.)
SELECT ectosync.watch('mv.posts') IS NOT NULL AS watched;

-- 500 users' own posts (10 each), held in this one session.
CREATE TEMP TABLE copies AS
  SELECT 'user ' || u AS name, ectosync.hold('user ' || u, 'mv.posts', '{"$query": {"order_by": "title"}}',
                                             pg_catalog.jsonb_build_object('author_id', u),
                                             listen => false) AS copy
  FROM generate_series(1, 500) u;
SELECT count(*) AS held FROM ectosync.held();
-- Nothing changed yet: the first call looks at every value once, then
-- times out with no row.
SELECT count(*) AS changed FROM ectosync.wait_changes(100);

-- Writes of three users' posts: exactly their values come back.
UPDATE mv.posts SET title = 'edited' WHERE id IN (7, 8);     -- users 8 and 9
INSERT INTO mv.posts VALUES (6001, 42, 'new post of user 42');
SELECT ectosync.wait_for_worker();  -- (else the first change alone may come back)
CREATE TEMP TABLE replies AS SELECT * FROM ectosync.wait_changes(5000);
SELECT name, version, patch FROM replies ORDER BY name;
-- Each copy, patched as a client patches it, equals a fresh load.
UPDATE copies SET copy = regress.patch(copy, r.patch) FROM replies r WHERE r.name = copies.name;
SELECT count(*) AS held_values,
       count(*) FILTER (WHERE (c.copy - 'seq') = (ectosync.load('mv.posts', h.assocs, h.filter) - 'seq'))
         AS equal_to_a_fresh_load
  FROM ectosync.held() h JOIN copies c USING (name);

-- The worker woke this session only for those values: the others'
-- entries counted no match.
SELECT name, notifications FROM ectosync.held() WHERE notifications > 0 ORDER BY name;

-- Memory per held value in this backend (its own copy, context and
-- bookkeeping), for values of about 10 rows.
SELECT sum(total_bytes) / 500 < 16384 AS under_16_kB_per_value
  FROM pg_backend_memory_contexts WHERE name LIKE 'ecto_sync held%';

-- Waiting costs nothing while nothing changes: the call sleeps to its
-- timeout, without looking at the 500 values again and again.
SELECT count(*) AS changed FROM ectosync.wait_changes(0);
SELECT regress.sleeps() AS s0, regress.cpu_ticks() AS t0 \gset
SELECT count(*) AS changed FROM ectosync.wait_changes(1000);
SELECT regress.sleeps() - :s0 < 30 AS slept, regress.cpu_ticks() - :t0 < 30 AS idle;

-- With LISTEN instead of a waiting call: one channel for all of the
-- session's values, which the worker notifies once a batch that concerns
-- any of them (the client then calls wait_changes(0)).  Its name cannot be
-- guessed by another role.  (UNLISTEN in the same transaction: the
-- notification it sends itself is not shown here; client/tests/hub_test
-- receives them.)
BEGIN;
SELECT ectosync.listen_changes() ~ ('^ectosync_changes_' || pg_backend_pid() || '_[0-9a-f]{16}$')
  AS channel;
UNLISTEN *;
COMMIT;

-- A reply names the events that changed the value: a post that moves to
-- user 42 names the update that moved it, not the post's insert before,
-- which did not concern user 42 then (though the post, read as it is now,
-- is theirs).
INSERT INTO mv.posts VALUES (6002, 43, 'moves');
UPDATE mv.posts SET author_id = 42 WHERE id = 6002;
SELECT ectosync.wait_for_worker();
CREATE TEMP TABLE moved_in AS SELECT * FROM ectosync.wait_changes(5000);
SELECT name, patch -> 0 ->> 'op' AS op,
       events = jsonb_build_array((SELECT last_seq FROM ectosync.stats())) AS only_the_update
  FROM moved_in ORDER BY name;
UPDATE copies SET copy = regress.patch(copy, r.patch) FROM moved_in r WHERE r.name = copies.name;

-- A wake looks only at the values whose entries the worker queued for
-- this session.  When more moved at once than its queue holds (512), the
-- session looks at all of them, and every entry is queued again the next
-- time it moves.  100 more values make 600 entries; two updates of every
-- post move all of them, twice.
INSERT INTO copies
  SELECT 'user ' || u || ' by id', ectosync.hold('user ' || u || ' by id', 'mv.posts', '[]',
                                                  pg_catalog.jsonb_build_object('author_id', u),
                                                  listen => false)
  FROM generate_series(1, 100) u;
SELECT count(*) AS changed FROM ectosync.wait_changes(0);
UPDATE mv.posts SET title = title || '.';
SELECT ectosync.wait_for_worker();
CREATE TEMP TABLE all_replies AS SELECT * FROM ectosync.wait_changes(5000);
UPDATE mv.posts SET title = title || '.';
SELECT ectosync.wait_for_worker();
INSERT INTO all_replies SELECT * FROM ectosync.wait_changes(5000);
SELECT count(DISTINCT name) AS values_changed, count(*) AS replies FROM all_replies;
UPDATE copies SET copy = regress.patch(regress.patch(copy, r1.patch), r2.patch)
  FROM all_replies r1, all_replies r2
  WHERE r1.name = copies.name AND r2.name = copies.name AND r2.version = r1.version + 1;
SELECT count(*) AS held_values,
       count(*) FILTER (WHERE (c.copy - 'seq') = (ectosync.load('mv.posts', h.assocs, h.filter) - 'seq'))
         AS equal_to_a_fresh_load
  FROM ectosync.held() h JOIN copies c USING (name);
SELECT ectosync.release(ARRAY(SELECT 'user ' || u || ' by id' FROM generate_series(1, 100) u))
  AS released;

-- Values of the session's own (held in a transaction with an xid: not
-- shared) that no event concerns for a while are not looked at; when one
-- does, the value moves on from where it was, past the events it did not
-- need.
BEGIN;
SELECT pg_current_xact_id() IS NOT NULL AS has_xid;
CREATE TEMP TABLE own_copies AS
  SELECT 'own ' || u AS name, ectosync.hold('own ' || u, 'mv.posts', '[]',
                                             pg_catalog.jsonb_build_object('author_id', u),
                                             listen => false) AS copy
  FROM generate_series(1, 3) u;
COMMIT;
SELECT count(*) AS own_values FROM ectosync.held() WHERE name LIKE 'own %' AND shared_by IS NULL;
SELECT count(*) AS changed FROM ectosync.wait_changes(0);
UPDATE mv.posts SET title = 'quiet for user 1 to 3' WHERE author_id = 10;
SELECT ectosync.wait_for_worker();
SELECT name FROM ectosync.wait_changes(200) ORDER BY name;
UPDATE mv.posts SET title = 'own' WHERE id = 1;    -- user 2's
SELECT ectosync.wait_for_worker();
CREATE TEMP TABLE own_replies AS SELECT * FROM ectosync.wait_changes(5000) WHERE name LIKE 'own %';
SELECT name, version, patch -> 0 ->> 'op' AS op FROM own_replies ORDER BY name;
UPDATE own_copies SET copy = regress.patch(copy, r.patch) FROM own_replies r WHERE r.name = own_copies.name;
SELECT count(*) AS own_values,
       count(*) FILTER (WHERE (c.copy - 'seq') = (ectosync.load('mv.posts', h.assocs, h.filter) - 'seq'))
         AS equal_to_a_fresh_load
  FROM ectosync.held() h JOIN own_copies c USING (name);
SELECT ectosync.release(ARRAY['own 1', 'own 2', 'own 3']) AS released;

-- release() takes a set of names.
SELECT ectosync.release(ARRAY(SELECT 'user ' || u FROM generate_series(1, 500) u)) AS released;
SELECT count(*) AS still_held FROM ectosync.held();

-- Three screens of one application show the same list: one value on the
-- server, three names in the session.  With patch_once, the patch comes
-- once; the other names say which row has it (same_as).
-- (held and replied to in statements without an xid, which a statement
-- that writes a table has: such a session goes on with its own copies)
SELECT ectosync.hold('screen 1', 'mv.posts', '[]', '{"author_id": 7}', listen => false) AS copy1,
       ectosync.hold('screen 2', 'mv.posts', '[]', '{"author_id": 7}', listen => false) AS copy2,
       ectosync.hold('screen 3', 'mv.posts', '[]', '{"author_id": 7}', listen => false) AS copy3
\gset
CREATE TEMP TABLE screens (name, copy) AS
  VALUES ('screen 1', :'copy1'::jsonb), ('screen 2', :'copy2'), ('screen 3', :'copy3');
SELECT name, shared_by FROM ectosync.held() ORDER BY name;
SELECT count(*) AS changed FROM ectosync.wait_changes(0);
UPDATE mv.posts SET title = 'seen on three screens' WHERE id = 6;   -- user 7's
SELECT ectosync.wait_for_worker();
SELECT jsonb_agg(to_jsonb(w)) AS replies FROM ectosync.wait_changes(5000, patch_once => true) w
\gset
CREATE TEMP TABLE screen_replies AS
  SELECT * FROM jsonb_to_recordset(:'replies')
    AS (name text, version bigint, same_as text, patch jsonb, events jsonb);
SELECT name, version, same_as, patch, events IS NULL AS no_events
  FROM screen_replies ORDER BY name;
UPDATE screens SET copy = regress.patch(copy, coalesce(r.patch, first.patch))
  FROM screen_replies r LEFT JOIN screen_replies first ON first.name = r.same_as
  WHERE r.name = screens.name;
SELECT count(*) AS screens,
       count(*) FILTER (WHERE (s.copy - 'seq') = (ectosync.load('mv.posts', h.assocs, h.filter) - 'seq'))
         AS equal_to_a_fresh_load
  FROM ectosync.held() h JOIN screens s USING (name);
-- Without it (the default), each name has the patch.
UPDATE mv.posts SET title = 'again' WHERE id = 6;
SELECT ectosync.wait_for_worker();
SELECT name, same_as, patch FROM ectosync.wait_changes(5000) ORDER BY name;
SELECT ectosync.release(ARRAY['screen 1', 'screen 2', 'screen 3']) AS released;

-- One value's failure is its row alone: a role that can no longer read a
-- table of one of its values gets that value's error, and the others'
-- changes, from the same call.
CREATE TABLE mv.notes (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO mv.notes VALUES (1, 'a note');
SELECT ectosync.watch('mv.notes') IS NOT NULL AS watched;
CREATE ROLE mv_reader;
GRANT USAGE ON SCHEMA mv TO mv_reader;
GRANT SELECT ON mv.posts, mv.notes TO mv_reader;
SET ROLE mv_reader;
SELECT count(*) AS held FROM (
  SELECT ectosync.hold('posts of user 1', 'mv.posts', '[]', '{"author_id": 1}', listen => false)
  UNION ALL SELECT ectosync.hold('notes', 'mv.notes', listen => false)) h;
SELECT count(*) AS changed FROM ectosync.wait_changes(100);
RESET ROLE;
REVOKE SELECT ON mv.notes FROM mv_reader;
UPDATE mv.notes SET body = 'changed' WHERE id = 1;
UPDATE mv.posts SET title = 'changed' WHERE id = 500;     -- user 1's
SELECT ectosync.wait_for_worker();
SET ROLE mv_reader;
SELECT name, version, jsonb_array_length(patch) AS ops, error
  FROM ectosync.wait_changes(5000) ORDER BY name;
SELECT ectosync.release(ARRAY['posts of user 1', 'notes']) AS released;
RESET ROLE;
-- A value under row level security is read whenever the worker loaded
-- events (its interest cannot tell which rows become visible); with none
-- loaded, a wait sleeps to its timeout too.
ALTER TABLE mv.posts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_posts ON mv.posts FOR SELECT TO mv_reader USING (author_id = 1);
SET ROLE mv_reader;
SELECT jsonb_array_length(ectosync.hold('visible posts', 'mv.posts', listen => false) -> 'rows') AS rows;
SELECT count(*) AS changed FROM ectosync.wait_changes(0);
RESET ROLE;
SELECT regress.sleeps() AS s0, regress.cpu_ticks() AS t0 \gset
SET ROLE mv_reader;
SELECT count(*) AS changed FROM ectosync.wait_changes(1000);
RESET ROLE;
SELECT regress.sleeps() - :s0 < 30 AS slept, regress.cpu_ticks() - :t0 < 30 AS idle;
SET ROLE mv_reader;
SELECT ectosync.release('visible posts') AS released;
RESET ROLE;
DROP POLICY own_posts ON mv.posts;
ALTER TABLE mv.posts DISABLE ROW LEVEL SECURITY;
SELECT ectosync.unwatch('mv.notes');
REVOKE ALL ON SCHEMA mv FROM mv_reader;
REVOKE ALL ON mv.posts FROM mv_reader;
DROP ROLE mv_reader;
SELECT ectosync.unwatch('mv.posts');
DROP SCHEMA mv CASCADE;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
