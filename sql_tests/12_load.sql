-- ectosync.load(tbl, assocs, filter) returns a value: the rows of tbl with
-- the associations named by assocs nested in each row, plus what sync()
-- needs to patch it later.  Rows are ordered by primary key (text keys
-- bytewise), has_many/many_to_many are arrays, belongs_to/has_one objects
-- or null.

-- A value follows its tables through the changes that watches capture:
-- load() of a shape whose tables (or whose associations' key columns) no
-- watch captures fails, rather than give a value that would silently fall
-- behind.
SELECT ectosync.load('posts', '["author"]');
-- So this file watches what it loads.  What is captured is the union of
-- the watches: a value is loaded when that covers its shape.
SELECT ectosync.watch('posts', '["author", "tags", "labels", {"comments": ["author"]},
                                 "entries", "Weird Table"]') IS NOT NULL AS posts_watched;
SELECT ectosync.watch('persons', '["profile", {"posts": {"tags": {"posts": []}}}]')
  IS NOT NULL AS persons_watched;
SELECT ectosync.watch('"Weird Table"', '["post"]') IS NOT NULL AS weird_watched;

-- The parts of a value that vary from run to run (the table's oid, the
-- database's epoch, the last event's seq) are checked here once and
-- left out below.
SELECT (v->>'relid')::oid = 'posts'::regclass AS relid_ok,
       v->>'epoch' ~ '^[0-9a-f]{16}$' AS epoch_ok,
       jsonb_typeof(v->'seq') AS seq,
       v->'ectosync' AS format, v->'table' AS "table", v->'assocs' AS assocs,
       v->'filter' AS filter
  FROM ectosync.load('posts') v;

-- epoch and seq are the database's: seq is the last event queued
-- before the value's query ran (here, the update of a watched table).
UPDATE tags SET name = 'coding' WHERE id = 3;
SELECT v->>'epoch' = s.epoch AS same_epoch, (v->>'seq')::bigint = s.last_seq AS seq_is_last_event,
       s.last_seq > 0 AS some_events
  FROM ectosync.load('tags') v, ectosync.stats s;
UPDATE tags SET name = 'code' WHERE id = 3;

CREATE FUNCTION show(v jsonb) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT 'assocs: ' || (v->'assocs')::text || ', filter: ' || (v->'filter')::text
  UNION ALL
  SELECT r::text FROM jsonb_array_elements(v->'rows') r
$$;

-- Just the rows.
SELECT show(ectosync.load('posts'));

-- belongs_to and has_one: an object, or null.
SELECT show(ectosync.load('posts', '["author"]'));
SELECT show(ectosync.load('persons', '["profile"]'));

-- has_many: arrays ordered by the target's primary key; empty when none.
SELECT show(ectosync.load('posts', '["comments"]'));

-- many_to_many through join tables; uuid keys order as text.
SELECT show(ectosync.load('posts', '["tags", "labels"]'));

-- Nested to any depth; names repeated in a spec merge.
SELECT show(ectosync.load('posts', '["tags", {"comments": ["author"]}, {"comments": {"post": "author"}}]'));
SELECT show(ectosync.load('persons', '{"posts": {"tags": {"posts": []}}}', '{"id": 2}'));

-- Other schemas and quoted names; text primary keys order bytewise ("B" < "a" < "b").
SELECT show(ectosync.load('posts', '["entries", "Weird Table"]', '{"id": 1}'));
SELECT show(ectosync.load('"Weird Table"', '["post"]'));

-- Filters: equalities on columns of the root table, values as to_jsonb
-- renders them (kept normalized in the value); JSON null is IS NULL.
SELECT show(ectosync.load('posts', '["author"]', '{"author_id": 1}'));
SELECT show(ectosync.load('posts', '[]', '{"author_id": null}'));
SELECT show(ectosync.load('posts', '[]', '{"author_id": 1, "title": "Notes"}'));
SELECT show(ectosync.load('labels', '[]', '{"id": "A0000000-0000-0000-0000-000000000001"}'));
SELECT show(ectosync.load('posts', '[]', '{}'));
SELECT show(ectosync.load('posts', '[]', '{"id": 99}'));

-- Explicit definitions, for what discovery cannot find or to pick a name.
SELECT show(ectosync.load('posts', '{"writer": {"belongs_to": "persons", "columns": ["author_id"], "assocs": ["profile"]}}', '{"id": 1}'));
SELECT show(ectosync.load('persons', '{"writings": {"has_many": "posts", "columns": "author_id", "assocs": {"marks": {"many_to_many": "labels", "through": "posts_labels", "owner_columns": "post_id", "target_columns": "label_id"}}}}', '{"id": 1}'));

-- Errors name what is wrong.
SELECT ectosync.load('posts', '["nope"]');
SELECT ectosync.load('posts', '{"comments": ["nope"]}');
SELECT ectosync.load('posts', '[1]');
SELECT ectosync.load('posts', '{"w": {"belongs_to": "nobody", "columns": "author_id"}}');
SELECT ectosync.load('posts', '{"w": {"belongs_to": "persons", "colums": "author_id"}}');
SELECT ectosync.load('posts', '{"w": {"belongs_to": "persons", "columns": "writer_id"}}');
SELECT ectosync.load('posts', '{"w": {"belongs_to": "persons", "columns": "title"}}');
SELECT ectosync.load('posts', '{"title": {"belongs_to": "persons", "columns": "author_id"}}');
SELECT ectosync.load('posts', '[]', '{"nope": 1}');
SELECT ectosync.load('posts', '[]', '{"id": "one"}');
SELECT ectosync.load('posts', '[]', '{"id": "1"}');
SELECT ectosync.load('posts', '[]', '{"title": 1}');
SELECT ectosync.load('posts', '[]', '[1]');

-- Every table of a value needs a primary key (or a unique NOT NULL key) of
-- a type ecto_sync can use as a key.
CREATE TABLE post_logs (post_id int REFERENCES posts, line text);
SELECT ectosync.load('posts', '["post_logs"]');
DROP TABLE post_logs;
CREATE TABLE post_events (at interval PRIMARY KEY, post_id int REFERENCES posts);
SELECT ectosync.load('posts', '["post_events"]');
DROP TABLE post_events;

-- A partitioned table is a table like the others (sql_tests/60_partitions.sql);
-- its partitions are not.
CREATE TABLE post_views (post_id int REFERENCES posts, day int, PRIMARY KEY (post_id, day))
  PARTITION BY RANGE (day);
CREATE TABLE post_views_1 PARTITION OF post_views FOR VALUES FROM (1) TO (100);
INSERT INTO post_views VALUES (1, 7);
SELECT name, kind FROM ectosync.associations('posts') WHERE name = 'post_views';
SELECT ectosync.watch('posts', '["post_views"]') IS NOT NULL AS views_watched;
SELECT show(ectosync.load('posts', '["post_views"]', '{"id": 1}'));
SELECT ectosync.load('post_views_1');
SELECT ectosync.unwatch('posts', '["post_views"]');
DROP TABLE post_views;

-- The plan follows schema changes: a new foreign key is a new association.
CREATE TABLE post_notes (id int PRIMARY KEY, post_id int, note text);
INSERT INTO post_notes VALUES (1, 1, 'first');
SELECT ectosync.load('posts', '["post_notes"]', '{"id": 1}');
ALTER TABLE post_notes ADD FOREIGN KEY (post_id) REFERENCES posts;
SELECT ectosync.load('posts', '["post_notes"]', '{"id": 1}');
SELECT ectosync.watch('posts', '["post_notes"]') IS NOT NULL AS notes_watched;
SELECT show(ectosync.load('posts', '["post_notes"]', '{"id": 1}'));
SELECT ectosync.unwatch('posts', '["post_notes"]');
DROP TABLE post_notes;

-- Plans are cached per session and forgotten when a table they use
-- changes: renaming the column an association is named after renames it.
SELECT show(ectosync.load('posts', '["author"]', '{"id": 2}'));
ALTER TABLE posts RENAME COLUMN author_id TO writer_id;
SELECT ectosync.load('posts', '["author"]', '{"id": 2}');
SELECT show(ectosync.load('posts', '["writer"]', '{"id": 2}'));
ALTER TABLE posts RENAME COLUMN writer_id TO author_id;

-- load() runs as the calling role: privileges and row level security apply.
CREATE ROLE ectosync_reader;
GRANT SELECT ON posts, comments TO ectosync_reader;
SET ROLE ectosync_reader;
SELECT show(ectosync.load('posts', '["comments"]', '{"id": 2}'));
SELECT ectosync.load('posts', '["author"]');
RESET ROLE;
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_post_1 ON comments FOR SELECT TO ectosync_reader USING (post_id = 1);
SET ROLE ectosync_reader;
SELECT show(ectosync.load('posts', '["comments"]', '{"author_id": 1}'));
RESET ROLE;
DROP POLICY only_post_1 ON comments;
ALTER TABLE comments DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON posts, comments FROM ectosync_reader;
DROP ROLE ectosync_reader;

-- A value records the last event it reflects, which needs a snapshot per
-- statement: load() refuses REPEATABLE READ and SERIALIZABLE.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ectosync.load('posts');
ROLLBACK;


-- Composite keys all the way: a join table between two tables with
-- two-column primary keys.
CREATE SCHEMA t12;
CREATE TABLE t12.shelves (room text, no int, PRIMARY KEY (room, no));
CREATE TABLE t12.boxes (code varchar(5), part int, PRIMARY KEY (code, part));
CREATE TABLE t12.shelf_boxes (
  room text, shelf_no int, box_code varchar(5), box_part int,
  PRIMARY KEY (room, shelf_no, box_code, box_part),
  FOREIGN KEY (room, shelf_no) REFERENCES t12.shelves,
  FOREIGN KEY (box_code, box_part) REFERENCES t12.boxes
);
INSERT INTO t12.shelves VALUES ('b', 1), ('a', 2), ('a', 1);
INSERT INTO t12.boxes VALUES ('x', 2), ('x', 1), ('Y', 1);
INSERT INTO t12.shelf_boxes VALUES ('a', 1, 'x', 2), ('a', 1, 'Y', 1), ('b', 1, 'x', 2);
SELECT name, kind, through_owner_columns, through_target_columns FROM ectosync.associations('t12.shelves');
SELECT ectosync.watch('t12.shelves', '{"boxes": ["shelves"]}') IS NOT NULL AS shelves_watched;
SELECT show(ectosync.load('t12.shelves', '{"boxes": ["shelves"]}'));
SELECT show(ectosync.load('t12.shelves', '["boxes"]', '{"room": "a", "no": 1}'));
SELECT ectosync.unwatch('t12.shelves');
SET client_min_messages = warning;
DROP SCHEMA t12 CASCADE;
RESET client_min_messages;


-- The keyed load that sync() uses for rows entering a value: rows of a
-- table where columns equal values (text, as the type's input), nested as
-- load() nests them.
SELECT ectosync._load_rows_where('comments', '["author"]', '{post_id}', '{1}');
SELECT ectosync._load_rows_where('comments', '[]', '{author_id}', ARRAY[NULL]);
SELECT ectosync._load_rows_where('posts_tags', '["tag"]', '{post_id,tag_id}', '{1,2}');
SELECT ectosync._load_rows_where('labels', '["posts"]', '{id}', '{a0000000-0000-0000-0000-000000000001}');
SELECT ectosync._load_rows_where('posts', '[]', '{id}', '{99}');
SELECT ectosync._load_rows_where('posts', '[]', '{nope}', '{1}');

DROP FUNCTION show(jsonb);
SELECT ectosync.unwatch('posts'), ectosync.unwatch('persons'), ectosync.unwatch('"Weird Table"');
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
