-- A value follows its tables only through the changes that the capture
-- triggers report, and they capture what the watches need.  So a value is
-- loaded (load(), hold(), a held value's reload) only while the watches
-- capture every table of it, with its key and its associations' columns;
-- else 55000 says what is missing.  When capture
-- narrows (unwatch(), a dropped table), the values that held what it no
-- longer captures hear of it: they reload, and fail there.
CREATE SCHEMA captured;
SET search_path = captured, public;
CREATE TABLE authors (id int PRIMARY KEY, name text);
CREATE TABLE posts (id int PRIMARY KEY, author_id int REFERENCES authors, title text);
CREATE TABLE tags (id int PRIMARY KEY, name text);
CREATE TABLE post_tags (post_id int REFERENCES posts, tag_id int REFERENCES tags,
                        PRIMARY KEY (post_id, tag_id));
CREATE TABLE notes (id int PRIMARY KEY, post_ref int, body text);
INSERT INTO authors VALUES (1, 'Ada');
INSERT INTO posts VALUES (1, 1, 'Engines'), (2, 1, 'Looms');
INSERT INTO tags VALUES (1, 'math');
INSERT INTO post_tags VALUES (1, 1);
INSERT INTO notes VALUES (1, 1, 'check the gears');

-- Nothing watched: neither a load nor a held value.
SELECT ectosync.load('posts');
SELECT ectosync.hold('posts', 'posts', listen => false);

-- A watch of posts alone captures posts, not the tables of its tags.
SELECT ectosync.watch('posts') AS watched;
SELECT ectosync.load('posts') -> 'rows' -> 0 ->> 'title' AS title;
SELECT ectosync.load('posts', '["tags"]');
-- ectosync.load_unwatched reads it anyway, for reading only: the value
-- says so, and sync() refuses it, as nothing would bring it tags' changes.
-- (A value that the watches capture is an ordinary one.)
SET ectosync.load_unwatched = on;
SELECT ectosync.load('posts', '["tags"]') AS unwatched \gset
SELECT ectosync.load('posts') ? 'unwatched' AS watched_marked;
RESET ectosync.load_unwatched;
SELECT :'unwatched'::jsonb -> 'unwatched' AS marked;
SELECT ectosync.sync(:'unwatched'::jsonb, (:'unwatched'::jsonb ->> 'epoch') || ':1');
-- A value loaded in a transaction that changed its tables could keep a
-- change that rolls back, which no event would take out again: it says
-- so, and sync() asks for a load again (ZE001).
BEGIN;
SAVEPOINT s;
UPDATE posts SET title = 'never' WHERE id = 1;
SELECT ectosync.load('posts') AS uncommitted \gset
ROLLBACK TO s;
COMMIT;
SELECT :'uncommitted'::jsonb -> 'uncommitted' AS marked,
       :'uncommitted'::jsonb -> 'rows' -> 0 ->> 'title' AS title;
SELECT ectosync.sync(:'uncommitted'::jsonb, (:'uncommitted'::jsonb ->> 'epoch') || ':1');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT ectosync.load('posts') ? 'uncommitted' AS committed_marked;

-- What the watches capture is their union: a value is loaded when that
-- covers it, whichever watch brought what (post_tags' key holds the
-- columns of posts' tags).
SELECT ectosync.watch('tags') AS watched, ectosync.watch('post_tags') AS watched;
SELECT jsonb_path_query_array(ectosync.load('posts', '["tags"]'), '$.rows[*].tags[*].name') AS tags;

-- An association on columns that are no foreign key (an explicit one):
-- notes is captured by its own watch, but not its column post_ref, which
-- tells which post a note leaves when it moves.
SELECT ectosync.watch('notes') AS watched;
SELECT ectosync.load('posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}');
SELECT ectosync.watch('posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}') AS watched;
SELECT jsonb_path_query_array(ectosync.load('posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}'),
                              '$.rows[*].notes[*].body') AS notes;

-- A held value whose watch goes: its next changes() reloads it and fails,
-- naming what is no longer captured; watched again, it reloads.
SELECT ectosync.hold('posts notes', 'posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}',
                     listen => false) -> 'rows' -> 0 -> 'notes' AS held;
CREATE TEMP TABLE loaded AS
  SELECT ectosync.load('posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}') AS v;
SELECT ectosync.unwatch('posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}');
UPDATE notes SET post_ref = 2 WHERE id = 1;
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('posts notes');
-- wait_changes() says so in the value's row, once: the next call waits
-- (no event since) rather than answer the same error at once.
SELECT name, error IS NOT NULL AS failed FROM ectosync.wait_changes(200);
SELECT count(*) AS rows_at_once FROM ectosync.wait_changes(200);
-- sync() of a value loaded before says it must reload, and why; the load
-- then fails the same way.
SELECT regress.reload_reason(v) AS reason FROM loaded;
SELECT ectosync.load('posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}');
SELECT ectosync.watch('posts', '{"notes": {"has_many": "notes", "columns": "post_ref"}}') AS watched;
SELECT ectosync.wait_for_worker() AS drained;
SELECT c ->> 'reloaded' IS NOT NULL AS reloaded,
       jsonb_path_query_array(c, '$.patch[0].value.rows[*].notes[*].id') AS notes
  FROM ectosync.changes('posts notes') c;
SELECT ectosync.release('posts notes') AS released;

-- A watch made in the same transaction does not count: if the transaction
-- rolled back, the value would stay held, uncaptured.
BEGIN;
SELECT ectosync.watch('authors') AS watched;
SELECT ectosync.hold('authors', 'authors', listen => false);
ROLLBACK;
-- Nor may a transaction that narrows a capture be prepared: the values it
-- concerns reload at its commit, which COMMIT PREPARED could not do.
BEGIN;
SELECT ectosync.unwatch('post_tags');
PREPARE TRANSACTION 'narrowing';
SELECT ectosync.hold('authors', 'authors', listen => false);

-- A dropped table takes its watches with it; the values that did not hold
-- it are not disturbed.
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
SELECT ectosync.watch('posts', '["drafts"]') AS watched;
SELECT ectosync.hold('posts only', 'posts', listen => false) -> 'rows' -> 0 ->> 'title' AS held;
DROP TABLE drafts;
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('posts only') -> 'patch' AS patch;
SELECT ectosync.release('posts only') AS released;

-- A table made again (dropped and created by a migration) is another
-- table: its watch went with the old one, and a value held before holds
-- the old one's rows, which neither the new table's changes nor its
-- capture would reach.  The value fails; held again, once the new table
-- is watched, it is the new table's.
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
INSERT INTO drafts VALUES (1, 1);
SELECT ectosync.watch('posts', '["drafts"]') AS watched;
SELECT ectosync.hold('posts drafts', 'posts', '["drafts"]', listen => false)
       -> 'rows' -> 0 -> 'drafts' AS held;
SET client_min_messages = error;
DROP TABLE drafts;
RESET client_min_messages;
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
INSERT INTO drafts VALUES (2, 1);
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('posts drafts');
SELECT ectosync.watch('posts', '["drafts"]') AS watched;
SELECT ectosync.hold('posts drafts', 'posts', '["drafts"]', listen => false)
       -> 'rows' -> 0 -> 'drafts' AS held_again;
SELECT ectosync.release('posts drafts') AS released;
SELECT ectosync.unwatch('posts', '["drafts"]');
DROP TABLE drafts;

-- A table renamed away and another given its name (a migration that keeps
-- the old rows aside): the assocs lead to the new table, of the same owner
-- and schema.  The rename's marker names the old table, which the new plan
-- does not hold, and no event of the new table matches the value's
-- interest: it kept the old rows, with empty patches.  It is loaded again
-- now, and that fails while the new table is not captured, saying so.
-- Once watched, the value is the new table's.  A shared value, which its
-- holders share as of the old tables, is refused: held again, it is the
-- new table's.
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
INSERT INTO drafts VALUES (1, 1);
SELECT ectosync.watch('posts', '["drafts"]') AS watched;
BEGIN;
SELECT txid_current() IS NOT NULL AS own; -- (then the value is the session's own)
SELECT ectosync.hold('own drafts', 'posts', '["drafts"]', listen => false)
       -> 'rows' -> 0 -> 'drafts' AS held;
COMMIT;
SELECT ectosync.hold('shared drafts', 'posts', '["drafts"]', listen => false)
       -> 'rows' -> 0 -> 'drafts' AS held;
SELECT name, shared_by IS NOT NULL AS shared FROM ectosync.held()
 WHERE name LIKE '% drafts' ORDER BY name;
SELECT count(*) AS changed FROM ectosync.wait_changes(0); -- (the wait knows them now)
SELECT ectosync.load('posts', '["drafts"]') AS stateless \gset
SET client_min_messages = error;
ALTER TABLE drafts RENAME TO drafts_old;
RESET client_min_messages;
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
INSERT INTO drafts VALUES (2, 1);
SELECT ectosync.wait_for_worker() AS drained;
SELECT name, error FROM ectosync.wait_changes(0) ORDER BY name;
-- (and a stateless value, which carries its tables' oids)
SELECT regress.apply(:'stateless'::jsonb) -> 'rows' -> 0 -> 'drafts' AS stateless_drafts;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
\set VERBOSITY terse
SELECT ectosync.changes('own drafts');
SELECT ectosync.changes('shared drafts');
\set VERBOSITY default
SELECT ectosync.watch('posts', '["drafts"]') AS watched;
SELECT ectosync.changes('own drafts') -> 'patch' -> 0 -> 'value' -> 'rows' -> 0 -> 'drafts'
       AS own_drafts;
SELECT ectosync.hold('shared drafts', 'posts', '["drafts"]', listen => false)
       -> 'rows' -> 0 -> 'drafts' AS held_again;
SELECT ectosync.release('own drafts') AS released, ectosync.release('shared drafts') AS released;
SELECT ectosync.unwatch('posts', '["drafts"]');
DROP TABLE drafts, drafts_old;

SELECT ectosync.unwatch('posts'), ectosync.unwatch('tags'), ectosync.unwatch('post_tags'),
       ectosync.unwatch('notes');
RESET search_path;
DROP SCHEMA captured CASCADE;
