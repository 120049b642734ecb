-- A value follows its tables only through the changes that the capture
-- triggers report, and they capture what the watches need.  So a value is
-- loaded (load(), hold(), a held value's reload) only while the watches
-- capture every table of it, with its key, its associations' columns and
-- its join tables' ends; else 55000 says what is missing.  When capture
-- narrows (unwatch(), a dropped table), the values that held what it no
-- longer captures hear of it: they reload, and fail there.
CREATE SCHEMA captured;
SET search_path = captured, public;
CREATE TABLE authors (id int PRIMARY KEY, name text);
CREATE TABLE posts (id int PRIMARY KEY, author_id int REFERENCES authors, title text);
CREATE TABLE tags (id int PRIMARY KEY, name text);
CREATE TABLE post_tags (post_id int REFERENCES posts, tag_id int REFERENCES tags,
                        PRIMARY KEY (post_id, tag_id));
INSERT INTO authors VALUES (1, 'Ada');
INSERT INTO posts VALUES (1, 1, 'Engines'), (2, 1, 'Looms');
INSERT INTO tags VALUES (1, 'math');
INSERT INTO post_tags VALUES (1, 1);

-- Nothing watched: neither a load nor a held value.
SELECT ectosync.load('posts');
SELECT ectosync.hold('posts', 'posts', listen => false);

-- A watch of posts alone captures posts, not the tables of its tags.
SELECT ectosync.watch('posts') AS watched;
SELECT ectosync.load('posts') -> 'rows' -> 0 ->> 'title' AS title;
SELECT ectosync.load('posts', '["tags"]');

-- Each table captured by a watch of its own is not enough: posts' tags
-- need post_tags captured as their join table (a change of a link loads
-- the tag it links).
SELECT ectosync.watch('tags') AS watched, ectosync.watch('post_tags') AS watched;
SELECT ectosync.load('posts', '["tags"]');

-- What the watches capture is their union: a value is loaded when that
-- covers it, whichever watch brought what.
SELECT ectosync.watch('tags', '["posts"]') AS watched;
SELECT jsonb_path_query_array(ectosync.load('posts', '["tags"]'), '$.rows[*].tags[*].name') AS tags;

-- A held value whose watch goes: its next changes() reloads it and fails,
-- naming what is no longer captured; watched again, it reloads.
SELECT ectosync.hold('posts tags', 'posts', '["tags"]', listen => false)
       -> 'rows' -> 0 -> 'tags' AS held;
CREATE TEMP TABLE loaded AS SELECT ectosync.load('posts', '["tags"]') AS v;
SELECT ectosync.unwatch('tags', '["posts"]');
INSERT INTO post_tags VALUES (2, 1);
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('posts tags');
-- sync() of a value loaded before says it must reload, and why; the load
-- then fails the same way.
SELECT regress.reload_reason(v) AS reason FROM loaded;
SELECT ectosync.load('posts', '["tags"]');
SELECT ectosync.watch('tags', '["posts"]') AS watched;
SELECT ectosync.wait_for_worker() AS drained;
SELECT c ->> 'reloaded' IS NOT NULL AS reloaded,
       jsonb_path_query_array(c, '$.patch[0].value.rows[*].tags[*].name') AS tags
  FROM ectosync.changes('posts tags') c;
SELECT ectosync.release('posts tags') AS released;

-- A dropped table takes its watches with it; the values that did not hold
-- it are not disturbed.
CREATE TABLE drafts (id int PRIMARY KEY, post_id int REFERENCES posts);
SELECT ectosync.watch('posts', '["drafts"]') AS watched;
SELECT ectosync.hold('posts only', 'posts', listen => false) -> 'rows' -> 0 ->> 'title' AS held;
DROP TABLE drafts;
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('posts only') -> 'patch' AS patch;
SELECT ectosync.release('posts only') AS released;

SELECT ectosync.unwatch('posts'), ectosync.unwatch('tags'), ectosync.unwatch('post_tags');
RESET search_path;
DROP SCHEMA captured CASCADE;
