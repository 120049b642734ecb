-- ectosync.watch(tbl, assocs) installs a capture trigger on every table a
-- value of that shape depends on (join tables included) and records the
-- watch; unwatch() removes what no remaining watch needs.  The trigger's
-- arguments say which columns to capture: the number of primary key
-- columns, the primary key's attnums, then the other key columns' attnums.

-- The capture triggers, as pg_get_triggerdef shows them; each captured
-- table also has an AFTER TRUNCATE trigger ectosync_truncate.
CREATE VIEW capture_triggers AS
  SELECT t.tgrelid::regclass AS "table",
         substring(pg_get_triggerdef(t.oid) FROM 'ectosync\.capture\((.*)\)$') AS args,
         EXISTS (SELECT 1 FROM pg_trigger u
                  WHERE u.tgrelid = t.tgrelid AND u.tgname = 'ectosync_truncate') AS "truncate"
    FROM pg_trigger t WHERE t.tgname = 'ectosync_capture'
   ORDER BY t.tgrelid::regclass::text;
-- No TRUNCATE trigger is left behind.
CREATE VIEW stray_truncate_triggers AS
  SELECT u.tgrelid::regclass AS "table" FROM pg_trigger u
   WHERE u.tgname = 'ectosync_truncate'
     AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                      WHERE t.tgrelid = u.tgrelid AND t.tgname = 'ectosync_capture');

-- ectosync.watched_tables, with the oids in join_targets as names.
CREATE VIEW watched AS
  SELECT relid, pk_attnums, tracked_attnums, is_join,
         (SELECT jsonb_agg(t || jsonb_build_object('relid', (t->>'relid')::oid::regclass::text))
            FROM jsonb_array_elements(join_targets) t) AS join_targets
    FROM ectosync.watched_tables ORDER BY relid::text;
GRANT SELECT ON capture_triggers, stray_truncate_triggers, watched TO PUBLIC;

SELECT ectosync.watch('posts', '["tags", {"comments": ["author"]}]');

-- Only the keys the watch follows are captured besides the primary key:
-- posts is the owner side of comments and posts_tags (by its pk id), so
-- its trigger captures the pk only; comments captures post_id (attnum 2)
-- and author_id (3); posts_tags' primary key is both of its keys; persons
-- and tags: their pk.  watched_tables tells the worker which rows a change
-- of a join table touches.
SELECT * FROM capture_triggers;
SELECT * FROM watched;
SELECT root, spec FROM ectosync.watches;

-- Watching again is a no-op; the same shape written differently is the
-- same watch.
SELECT ectosync.watch('posts', '{"comments": "author", "tags": {}}');
SELECT root, spec FROM ectosync.watches;
SELECT * FROM capture_triggers;

-- An overlapping watch adds what it needs: posts.author_id now, and
-- profiles.  Triggers whose columns change are recreated.
SELECT ectosync.watch('posts', '{"author": ["profile"]}');
SELECT * FROM capture_triggers;
SELECT root, spec FROM ectosync.watches ORDER BY spec::text;

-- Unwatching one shape keeps what the other still needs.
SELECT ectosync.unwatch('posts', '["tags", {"comments": ["author"]}]');
SELECT * FROM capture_triggers;
SELECT * FROM watched;
-- Unwatching what is not watched does nothing.
SELECT ectosync.unwatch('posts', '["tags"]');
-- NULL assocs: every watch rooted at the table.
SELECT ectosync.unwatch('posts');
SELECT * FROM capture_triggers;
SELECT count(*) FROM ectosync.watches;

-- The channels a value needs: one per table (join tables included), named
-- ectosync_<oid>, and the database's own, ectosync_0 (its RELOAD markers of
-- every table: roles changed).  subscribe() LISTENs to them.
SELECT coalesce(nullif(substring(c FROM 10), '0')::oid::regclass::text, 'the database') AS "table",
       c = 'ectosync_' || substring(c FROM 10) AS named
  FROM ectosync.channels('posts', '["labels", {"comments": ["author"]}]') c;
SELECT count(*) FROM ectosync.subscribe('posts', '["tags"]');
SELECT coalesce(nullif(substring(c FROM 10), '0')::oid::regclass::text, 'the database') AS listening
  FROM pg_listening_channels() c ORDER BY 1;
UNLISTEN *;

-- Quoted names, schemas, uuid keys.
SELECT ectosync.watch('"Weird Table"', '["post"]');
SELECT ectosync.watch('audit.entries', '{"post": ["labels"]}');
SELECT * FROM capture_triggers;
SELECT * FROM watched;
SELECT ectosync.unwatch('"Weird Table"');
SELECT ectosync.unwatch('audit.entries');

-- Only the owner of every table of a watch (or a superuser) may watch.
CREATE ROLE ectosync_owner;
CREATE TABLE owned (id int PRIMARY KEY, post_id int REFERENCES posts);
ALTER TABLE owned OWNER TO ectosync_owner;
GRANT SELECT ON posts TO ectosync_owner;
SET ROLE ectosync_owner;
SELECT ectosync.watch('owned');
SELECT * FROM capture_triggers;
SELECT ectosync.watch('owned', '["post"]');
SELECT ectosync.unwatch('posts');
SELECT ectosync.unwatch('owned');
RESET ROLE;
SELECT * FROM capture_triggers;

-- Errors of the spec are the same as load()'s.
SELECT ectosync.watch('posts', '["nope"]');
SELECT ectosync.watch('posts', '{"w": {"has_many": "comments", "columns": "post_id", "order": "id"}}');

-- Dropping a table removes the watches that need it (with a WARNING) and
-- the triggers nobody needs any more.
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
SELECT ectosync.watch('posts', '["drafts"]');
SELECT ectosync.watch('posts', '["author"]');
SELECT * FROM capture_triggers;
DROP TABLE drafts;
SELECT root, spec FROM ectosync.watches;
SELECT * FROM capture_triggers;

-- The same for a dropped column that a watch follows.  A dropped foreign
-- key leaves the watch as it was, with a WARNING: a migration may drop it
-- to add it again (sql_tests/59_schema_change.sql), and values of the
-- watch's spec cannot be read meanwhile (sql_tests/13_captured.sql).
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts, editor_id bigint REFERENCES persons);
SELECT ectosync.watch('drafts', '["post"]');
SELECT ectosync.watch('drafts', '["editor"]');
ALTER TABLE drafts DROP COLUMN editor_id;
SELECT root, spec FROM ectosync.watches ORDER BY spec::text;
ALTER TABLE drafts DROP CONSTRAINT drafts_post_id_fkey;
SELECT root, spec FROM ectosync.watches ORDER BY spec::text;
SELECT * FROM capture_triggers;
SELECT ectosync.unwatch('drafts');
DROP TABLE drafts;

-- Dropping the root of a watch removes the watch.
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
SELECT ectosync.watch('drafts', '["post"]');
DROP TABLE drafts;
SELECT root, spec FROM ectosync.watches;
SELECT * FROM capture_triggers;

-- Explicit definitions are watched like discovered associations; the join
-- table of a many_to_many definition is captured with its ends.
SELECT ectosync.watch('persons', '{"writings": {"has_many": "posts", "columns": "author_id", "assocs": {"marks": {"many_to_many": "labels", "through": "posts_labels", "owner_columns": "post_id", "target_columns": "label_id"}}}}');
SELECT * FROM capture_triggers;
SELECT * FROM watched WHERE is_join;
SELECT ectosync.unwatch('persons');
-- A many_to_many's target_references must hold a unique key of its target:
-- a join row links one row (a load links every row it names, a patch the
-- one it finds).  Posts' author_id is shared by an author's posts.
SELECT ectosync.watch('labels', '{"writings": {"many_to_many": "posts", "through": "posts_labels", "owner_columns": "label_id", "target_columns": "post_id", "target_references": "author_id"}}');

-- Renames change nothing: watches and triggers are kept by oid and attnum.
ALTER TABLE persons RENAME TO people;
ALTER TABLE posts RENAME COLUMN title TO headline;
SELECT root, spec FROM ectosync.watches;
SELECT * FROM capture_triggers;
ALTER TABLE people RENAME TO persons;
ALTER TABLE posts RENAME COLUMN headline TO title;

-- Renaming the column an association is named after changes the name: the
-- old spec no longer resolves, and its watch keeps its triggers as they
-- were, with a WARNING when the watches are refreshed: at once, as the
-- rename is an ALTER TABLE of a watched table (schema_change.cpp).
ALTER TABLE posts RENAME COLUMN author_id TO writer_id;
SELECT ectosync.watch('comments');
SELECT * FROM capture_triggers;
-- Such a watch can still be removed by its stored spec.
SELECT ectosync.unwatch('posts', '{"author": {}}');
SELECT root, spec FROM ectosync.watches;
SELECT * FROM capture_triggers;
ALTER TABLE posts RENAME COLUMN writer_id TO author_id;
SELECT ectosync.watch('posts', '["author"]');
SELECT ectosync.unwatch('comments');

-- Dropping the extension drops the triggers with it (rolled back here).
BEGIN;
SET LOCAL client_min_messages = warning;
DROP EXTENSION ecto_sync CASCADE;
SELECT count(*) FROM pg_trigger WHERE tgname IN ('ectosync_capture', 'ectosync_truncate');
ROLLBACK;

SELECT ectosync.unwatch('posts');
SELECT * FROM capture_triggers;
SELECT * FROM stray_truncate_triggers;
DROP TABLE owned;
REVOKE ALL ON posts FROM ectosync_owner;
DROP ROLE ectosync_owner;
DROP VIEW watched;
DROP VIEW stray_truncate_triggers;
DROP VIEW capture_triggers;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
