-- sync(): values of several shapes follow every kind of change.  After each
-- step, every holder applies the new events in order (ectosync._events_since
-- waits for the worker) and its value must equal a fresh load ("seq" aside).
-- watch() may tell which triggers it replaces: not what is tested here
SET client_min_messages = warning;
CREATE TEMP TABLE holders (name text PRIMARY KEY, val jsonb NOT NULL);
-- apply the events, then: does each value equal a fresh load?
CREATE FUNCTION pg_temp.step() RETURNS TABLE (holder text, same boolean) LANGUAGE plpgsql AS $$
BEGIN
  UPDATE holders h SET val = regress.apply(h.val);
  RETURN QUERY SELECT h.name, (h.val - 'seq') = (regress.fresh(h.val) - 'seq')
               FROM holders h ORDER BY h.name;
END $$;

SELECT ectosync.watch('posts', '["author", "tags", "labels", {"comments": ["author"]}, "entries", "Weird Table"]') IS NOT NULL AS watched;
SELECT ectosync.watch('persons', '["profile", {"posts": ["tags", "comments"]}]') IS NOT NULL AS watched;
SELECT ectosync.watch('comments', '[{"post": ["author"]}, "author"]') IS NOT NULL AS watched;
SELECT ectosync.watch('tags', '[{"posts": ["author"]}]') IS NOT NULL AS watched;
INSERT INTO holders VALUES
  ('posts', ectosync.load('posts', '["author", "tags", "labels", {"comments": ["author"]}, "entries", "Weird Table"]')),
  ('persons', ectosync.load('persons', '["profile", {"posts": ["tags", "comments"]}]')),
  ('comments', ectosync.load('comments', '[{"post": ["author"]}, "author"]')),
  ('tags', ectosync.load('tags', '[{"posts": ["author"]}]'));
SELECT * FROM pg_temp.step();

-- a root row updated
UPDATE posts SET title = 'Engines!' WHERE id = 1;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].title') FROM holders WHERE name = 'posts';

-- a row updated at every depth: Ada is an author of posts, comments, and a root person
UPDATE persons SET name = 'Ada L.' WHERE id = 1;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].post.author.name') FROM holders WHERE name = 'comments';

-- belongs_to keys changed: the nested parent is replaced (with its own associations)
UPDATE posts SET author_id = 3 WHERE id = 2;
UPDATE comments SET author_id = 2 WHERE id = 4;
UPDATE comments SET post_id = 2 WHERE id = 1;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].author.name') FROM holders WHERE name = 'posts';
SELECT jsonb_path_query_array(val, '$.rows[*] ? (@.id == 1).post.title') FROM holders WHERE name = 'comments';

-- has_many and has_one children inserted
INSERT INTO comments VALUES (5, 2, 3, 'Hmm'), (6, 4, NULL, 'Anyone?');
INSERT INTO profiles VALUES (12, 2, 'Writer');
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].comments[*].id') FROM holders WHERE name = 'posts';
SELECT jsonb_path_query_array(val, '$.rows[*].profile.bio') FROM holders WHERE name = 'persons';

-- a child moved to another parent, and back and forth in one transaction
UPDATE comments SET post_id = 3 WHERE id = 3;
BEGIN;
UPDATE comments SET post_id = 1 WHERE id = 5;
UPDATE comments SET post_id = 4 WHERE id = 5;
UPDATE comments SET body = 'Hmm!' WHERE id = 5;
COMMIT;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].comments[*].id') FROM holders WHERE name = 'posts';

-- children deleted; a has_one becomes null
DELETE FROM comments WHERE id = 2;
DELETE FROM profiles WHERE id = 10;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].profile') FROM holders WHERE name = 'persons';

-- join rows inserted, deleted, and one moved to another tag (its primary key changes)
INSERT INTO posts_tags VALUES (2, 1), (4, 3);
DELETE FROM posts_tags WHERE post_id = 1 AND tag_id = 2;
UPDATE posts_tags SET tag_id = 2 WHERE post_id = 3 AND tag_id = 1;
INSERT INTO posts_labels VALUES (3, 'b0000000-0000-0000-0000-000000000002');
DELETE FROM posts_labels WHERE post_id = 1 AND label_id = 'a0000000-0000-0000-0000-000000000001';
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].tags[*].name') FROM holders WHERE name = 'posts';
SELECT jsonb_path_query_array(val, '$.rows[*].posts[*].id') FROM holders WHERE name = 'tags';
SELECT jsonb_path_query_array(val, '$.rows[*].labels[*].name') FROM holders WHERE name = 'posts';

-- primary keys changed (rows move within their lists: bytewise text order)
UPDATE audit.entries SET entry_no = 99 WHERE entry_no = 101;
UPDATE "Weird Table" SET "Key Col" = 'A', "Col""Quote" = 'now upper' WHERE "Key Col" = 'a';
UPDATE tags SET name = 'maths' WHERE id = 1;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[0].entries[*].entry_no') AS entries,
       jsonb_path_query_array(val, '$.rows[*]."Weird Table"[*]."Key Col"') AS weird
FROM holders WHERE name = 'posts';

-- new root rows with children in one transaction
BEGIN;
INSERT INTO persons VALUES (4, 'Dan');
INSERT INTO posts VALUES (5, 4, 'Fresh'), (6, 1, 'Also fresh');
INSERT INTO comments VALUES (7, 5, 4, 'Self-reply');
INSERT INTO posts_tags VALUES (5, 2), (5, 1);
INSERT INTO profiles VALUES (13, 4, 'New here');
COMMIT;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].id') FROM holders WHERE name = 'posts';

-- cascaded deletes: a post (comments, join rows, entries, weird rows) and a person
DELETE FROM posts WHERE id = 1;
DELETE FROM persons WHERE id = 3;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].id') AS posts,
       jsonb_path_query_array(val, '$.rows[*].author.id') AS authors
FROM holders WHERE name = 'posts';
SELECT jsonb_path_query_array(val, '$.rows[*].id') FROM holders WHERE name = 'persons';

-- the final values, in full
SELECT name, jsonb_pretty(val -> 'rows') FROM holders WHERE name IN ('persons', 'tags') ORDER BY name;

-- A join table with a key of its own (defined explicitly) may link one
-- pair twice: removing one of two such links keeps the target, which the
-- other still links, in a list ordered by a $query too.
CREATE TABLE post_marks (id int PRIMARY KEY, post_id int NOT NULL REFERENCES posts ON DELETE CASCADE,
                         tag_id int NOT NULL REFERENCES tags ON DELETE CASCADE);
INSERT INTO post_marks VALUES (1, 2, 1), (2, 2, 1), (3, 2, 2);
\set marks '{"marks": {"many_to_many": "tags", "through": "post_marks", "owner_columns": ["post_id"], "target_columns": ["tag_id"]}}'
\set sorted '{"marks": {"many_to_many": "tags", "through": "post_marks", "owner_columns": ["post_id"], "target_columns": ["tag_id"], "assocs": {"$query": {"order_by": "name"}}}}'
SELECT ectosync.watch('posts', :'marks') IS NOT NULL AS watched;
DELETE FROM holders;
INSERT INTO holders VALUES ('marks', ectosync.load('posts', :'marks', '{"id": 2}')),
                           ('sorted marks', ectosync.load('posts', :'sorted', '{"id": 2}'));
DELETE FROM post_marks WHERE id = 1;
SELECT * FROM pg_temp.step();
SELECT name, jsonb_path_query_array(val, '$.rows[*].marks[*].id') AS marks FROM holders ORDER BY name;
UPDATE post_marks SET tag_id = 2 WHERE id = 2;  -- (moved to the pair that id 3 links)
SELECT * FROM pg_temp.step();
SELECT name, jsonb_path_query_array(val, '$.rows[*].marks[*].id') AS marks FROM holders ORDER BY name;
-- The join table is asked as the caller: a transaction that changed it
-- would decide the value by its own uncommitted rows (a held value is not
-- transactional), so changes() refuses one; after its rollback the value
-- equals a fresh load.
SELECT ectosync.hold('marks', 'posts', :'marks', '{"id": 2}', listen => false) IS NOT NULL AS held;
INSERT INTO post_marks VALUES (4, 2, 1);
SELECT ectosync.wait_for_worker();
SELECT ectosync.changes('marks', 0) -> 'version' AS version;
DELETE FROM post_marks WHERE id = 4;
SELECT ectosync.wait_for_worker();
BEGIN;
INSERT INTO post_marks VALUES (5, 2, 1);  -- rolled back below
SELECT jsonb_array_length(ectosync.changes('marks', 1) -> 'patch') > 0 AS changed;
ROLLBACK;
SELECT jsonb_path_query_array(c #> '{patch,0,value}', '$.rows[*].marks[*].id') AS held,
       jsonb_path_query_array(ectosync.load('posts', :'marks', '{"id": 2}'), '$.rows[*].marks[*].id') AS fresh
  FROM (SELECT ectosync.changes('marks', 0) AS c) s;
SELECT ectosync.release('marks');

-- A many_to_many whose join rows name other columns than the keys: each
-- member's duties by email and code.  A member's email changes: its list
-- is read again.  A duty's code changes: it leaves the lists whose join
-- rows name the old code, and enters those whose join rows name the new
-- one.  A value synced event by event follows, and so does member 2's held
-- value, which no event of a duty it holds tells of the one that enters.
CREATE TABLE members (id int PRIMARY KEY, email text UNIQUE NOT NULL);
CREATE TABLE duties (id int PRIMARY KEY, code text UNIQUE NOT NULL);
CREATE TABLE assignments (email text, code text, PRIMARY KEY (email, code));
INSERT INTO members VALUES (1, 'a@x'), (2, 'd@x');
INSERT INTO duties VALUES (1, 'ops'), (2, 'dev'), (3, 'web');
INSERT INTO assignments VALUES ('a@x', 'dev'), ('c@x', 'ops'), ('d@x', 'qa'), ('d@x', 'web');
\set duties '{"duties": {"many_to_many": "duties", "through": "assignments", "owner_columns": ["email"], "target_columns": ["code"], "references": ["email"], "target_references": ["code"]}}'
SELECT ectosync.watch('members', :'duties') IS NOT NULL AS watched;
DELETE FROM holders;
INSERT INTO holders VALUES ('duties', ectosync.load('members', :'duties'));
CREATE TEMP TABLE held_duties AS
  SELECT ectosync.hold('duties', 'members', :'duties', '{"id": 2}', listen => false) AS val,
         0::bigint AS version;
CREATE FUNCTION pg_temp.held_step() RETURNS TABLE (duties jsonb, same boolean) LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
  PERFORM ectosync.wait_for_worker();
  SELECT ectosync.wait_changes('duties', h.version, 1000) INTO c FROM held_duties h;
  UPDATE held_duties SET val = regress.patch(val, c -> 'patch'), version = (c ->> 'version')::bigint;
  RETURN QUERY SELECT jsonb_path_query_array(h.val, '$.rows[*].duties[*].code'),
                      (h.val - 'seq') = (regress.fresh(h.val) - 'seq')
                 FROM held_duties h;
END $$;
UPDATE members SET email = 'c@x' WHERE id = 1;   -- dev goes, ops comes
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.held_step();
UPDATE duties SET code = 'qa' WHERE id = 2;      -- member 2's join row names qa
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.held_step();
UPDATE duties SET code = 'sre' WHERE id = 1;     -- member 1's names ops: none now
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.held_step();
-- A duty inserted after a join row that names it (no foreign key: the join
-- row may come first) enters that row's list.
INSERT INTO assignments VALUES ('d@x', 'ml');
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.held_step();
INSERT INTO duties VALUES (4, 'ml');
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.held_step();
SELECT ectosync.release('duties');
SELECT ectosync.unwatch('members');

SELECT ectosync.unwatch('posts');
SELECT ectosync.unwatch('persons');
SELECT ectosync.unwatch('comments');
SELECT ectosync.unwatch('tags');
DROP TABLE post_marks, assignments, members, duties;
