-- Queries: the lists that screens show.  A "$query" in the assocs spec
-- selects and orders the rows of a list, at the root and in every has_many
-- or many_to_many association:
--   {"where": ..., "order_by": ..., "limit": n, "offset": n}
-- and sync() and changes() keep such a value equal to a fresh load().
CREATE SCHEMA q;
CREATE TABLE q.persons (id int PRIMARY KEY, name text NOT NULL, data jsonb);
CREATE TABLE q.posts (id int PRIMARY KEY, author_id int REFERENCES q.persons,
                      title text NOT NULL, published bool NOT NULL,
                      inserted_at timestamptz NOT NULL);
CREATE INDEX ON q.posts (inserted_at);
CREATE TABLE q.comments (id int PRIMARY KEY, post_id int NOT NULL REFERENCES q.posts ON DELETE CASCADE,
                         body text NOT NULL, inserted_at timestamptz NOT NULL);
CREATE TABLE q.tags (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE q.posts_tags (post_id int REFERENCES q.posts ON DELETE CASCADE,
                           tag_id int REFERENCES q.tags ON DELETE CASCADE,
                           PRIMARY KEY (post_id, tag_id));
INSERT INTO q.persons VALUES (1, 'ann'), (2, 'bob');
INSERT INTO q.posts SELECT i, 1 + i % 2, 'post ' || i, i <> 4, '2024-01-01'::timestamptz + i * interval '1 day'
  FROM generate_series(1, 6) i;
INSERT INTO q.comments SELECT i, 6 - i % 2, 'comment ' || i, '2024-02-01'::timestamptz + i * interval '1 hour'
  FROM generate_series(1, 5) i;
INSERT INTO q.tags VALUES (1, 'sql'), (2, 'c++'), (3, 'news');
INSERT INTO q.posts_tags VALUES (6, 1), (6, 2), (6, 3), (5, 3);
SELECT ectosync.watch('q.posts', '["author", "comments", "tags"]') IS NOT NULL AS watched;

-- The screen: the 3 newest published posts, each with its tags by name and
-- its 2 newest comments.  (Ecto: from p in Post, where: p.published,
-- order_by: [desc: p.inserted_at], limit: 3, preload: [tags: from(t in Tag,
-- order_by: t.name), comments: ...].)
CREATE TABLE q.shape AS SELECT '{
  "$query": {"where": [["published", "=", true]], "order_by": {"inserted_at": "desc"}, "limit": 3},
  "tags": {"$query": {"order_by": "name"}},
  "comments": {"$query": {"order_by": {"inserted_at": "desc"}, "limit": 2}}}'::jsonb AS s;
-- What a screen shows of a value: each post's title, tags and comments.
CREATE FUNCTION q.screen(v jsonb) RETURNS TABLE (title text, tags text, comments text)
LANGUAGE sql AS $$
  SELECT r ->> 'title',
         (SELECT string_agg(t ->> 'name', ', ' ORDER BY n) FROM jsonb_array_elements(r -> 'tags') WITH ORDINALITY a(t, n)),
         (SELECT string_agg(c ->> 'body', ', ' ORDER BY n) FROM jsonb_array_elements(r -> 'comments') WITH ORDINALITY a(c, n))
  FROM jsonb_array_elements(v -> 'rows') WITH ORDINALITY AS x(r, i) ORDER BY i
$$;
CREATE TABLE q.client AS SELECT ectosync.load('q.posts', s) AS v FROM q.shape;
SELECT * FROM q.screen((SELECT v FROM q.client));
-- The value keeps its shape normalized: directions spelled in full, values
-- as to_jsonb renders them.
SELECT jsonb_pretty(v #> '{assocs,$query}') FROM q.client;

-- After each change the client syncs its value with every event, and it
-- equals a fresh load.
CREATE FUNCTION q.step() RETURNS TABLE (title text, tags text, comments text, equal_to_a_fresh_load boolean)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ectosync.wait_for_worker();
  UPDATE q.client SET v = regress.apply(v);
  RETURN QUERY SELECT s.*, (SELECT (v - 'seq') = (regress.fresh(v) - 'seq') FROM q.client)
    FROM q.screen((SELECT v FROM q.client)) s;
END $$;
-- A newer post enters at the top; the last one leaves the window.
INSERT INTO q.posts VALUES (7, 1, 'post 7', true, '2024-03-01');
SELECT * FROM q.step();
-- A post inside the window is deleted: the next one enters (read once,
-- by the order's index, skipping the rows the window holds).
DELETE FROM q.posts WHERE id = 6;
SELECT * FROM q.step();
-- A sort key changes: the row moves.
UPDATE q.posts SET inserted_at = '2024-04-01' WHERE id = 3;
SELECT * FROM q.step();
-- A row leaves the where, another enters it.
UPDATE q.posts SET published = false WHERE id = 7;
UPDATE q.posts SET published = true WHERE id = 4;
SELECT * FROM q.step();
-- An older post beyond the full window: nothing changes.
INSERT INTO q.posts VALUES (8, 2, 'post 8', true, '2023-01-01');
SELECT * FROM q.step();
-- Association lists keep their own windows and orders.
INSERT INTO q.comments VALUES (10, 5, 'newest', '2024-05-01');
UPDATE q.tags SET name = 'a first' WHERE id = 3;
INSERT INTO q.posts_tags VALUES (5, 1);
SELECT * FROM q.step();
DELETE FROM q.comments WHERE id = 10;
SELECT * FROM q.step();

-- Held in the session, a moved row comes as a remove and an add.
CREATE TABLE q.held AS SELECT ectosync.hold('screen', 'q.posts', s, listen => false) AS copy FROM q.shape;
UPDATE q.posts SET inserted_at = '2024-06-01' WHERE id = 4;
SELECT ectosync.wait_for_worker();
SELECT jsonb_path_query(ectosync.changes('screen', 0) -> 'patch', '$[*] ? (@.op != "replace")' )
  - 'value' AS op;
SELECT (regress.patch(copy, ectosync.changes('screen', 0) -> 'patch') - 'seq')
       = (ectosync.load('q.posts', (SELECT s FROM q.shape)) - 'seq') AS equal_to_a_fresh_load
  FROM q.held;
SELECT ectosync.release('screen');

-- The worker wakes a held window only for changes that may concern it:
-- any post of its filter may enter the window, but only the comments of
-- the posts it holds matter.  (Values without a filter are shared between
-- sessions, and woken by every change of their tables.)
SELECT jsonb_path_query_array(ectosync.hold('window', 'q.posts', s, '{"author_id": 1}', listen => false),
                              '$.rows[*].id') AS held_posts FROM q.shape;
CREATE FUNCTION q.wakes() RETURNS bigint LANGUAGE sql AS $$
  SELECT ectosync.wait_for_worker() AND true;
  SELECT notifications FROM ectosync.held() WHERE name = 'window'
$$;
CREATE TABLE q.seen AS SELECT q.wakes() AS n;
CREATE FUNCTION q.new_wakes() RETURNS bigint LANGUAGE sql AS $$
  WITH now AS (SELECT q.wakes() AS n) UPDATE q.seen SET n = now.n FROM now RETURNING now.n - (SELECT n FROM q.seen)
$$;
SELECT jsonb_path_query_array(ectosync.changes('window') -> 'patch', '$[*].op') AS ops;
SELECT q.new_wakes() AS woken;
INSERT INTO q.comments VALUES (20, 7, 'on a post of the author outside the window', '2024-07-01');
SELECT q.new_wakes() AS woken;
INSERT INTO q.comments VALUES (21, 2, 'on a post inside it', '2024-07-01');
SELECT q.new_wakes() AS woken;
SELECT ectosync.release('window');

-- A full window without a filter: a post may enter it wherever it sorts,
-- but not after the window's last row.  The worker compares the first
-- order column of a change with the last row's (capture carries that
-- column when the watch() spec names the query): posts that sort after
-- it wake nobody.
SELECT ectosync.watch('q.posts', '{"$query": {"order_by": {"inserted_at": "desc"}, "limit": 2},
                                   "author": {}, "comments": {}, "tags": {}}') IS NOT NULL AS watched;
SELECT jsonb_path_query_array(ectosync.hold('window', 'q.posts',
         '{"$query": {"order_by": {"inserted_at": "desc"}, "limit": 2}}', listen => false),
       '$.rows[*].inserted_at') AS newest;
UPDATE q.seen SET n = q.wakes();
UPDATE q.posts SET title = 'an old post, edited' WHERE id = 1;
SELECT q.new_wakes() AS woken;
INSERT INTO q.posts VALUES (30, 1, 'an old post, inserted', true, '2020-01-01');
SELECT q.new_wakes() AS woken;
INSERT INTO q.posts VALUES (31, 1, 'the newest post', true, '2025-01-01');
SELECT q.new_wakes() AS woken;
SELECT jsonb_path_query_array(ectosync.changes('window') -> 'patch', '$[*].op') AS ops;
DELETE FROM q.posts WHERE id IN (30, 31);
SELECT ectosync.release('window');

-- A where keeps out the posts outside it before and after a change: with
-- its columns captured (a watch() spec names the query), the worker wakes
-- nobody for them.
SELECT ectosync.watch('q.posts', '{"$query": {"where": [["published", "=", true]]},
                                   "author": {}, "comments": {}, "tags": {}}') IS NOT NULL AS watched;
SELECT jsonb_path_query_array(ectosync.hold('window', 'q.posts',
         '{"$query": {"where": [["published", "=", true]], "order_by": "id"}}', listen => false),
       '$.rows[*].id') AS published;
UPDATE q.seen SET n = q.wakes();
UPDATE q.posts SET title = 'an unpublished post, edited' WHERE id = 7;
SELECT q.new_wakes() AS woken;
INSERT INTO q.posts VALUES (32, 1, 'a draft', false, '2025-01-01');
SELECT q.new_wakes() AS woken;
UPDATE q.posts SET published = true WHERE id = 32;
SELECT q.new_wakes() AS woken;
SELECT jsonb_path_query_array(ectosync.changes('window') -> 'patch', '$[*].op') AS ops;
DELETE FROM q.posts WHERE id = 32;
SELECT ectosync.release('window');

-- Pages: a window with an offset holds its rows and knows how many rows
-- sort ahead of it (before its first row), not which.  A post that enters
-- ahead of the second page shifts it: the page is read again.
CREATE TABLE q.page AS SELECT ectosync.load('q.posts',
  '{"$query": {"order_by": "title", "limit": 2, "offset": 2}}') AS v;
SELECT r ->> 'title' AS title FROM q.page, jsonb_array_elements(v -> 'rows') r;
INSERT INTO q.posts VALUES (0, 1, 'post 0', true, '2024-01-01');
SELECT ectosync.wait_for_worker();
SELECT r ->> 'title' AS title FROM q.page, jsonb_array_elements(regress.apply(v) -> 'rows') r;
SELECT (regress.apply(v) - 'seq') = (regress.fresh(v) - 'seq') AS equal_to_a_fresh_load FROM q.page;

-- A change that keeps the number of rows ahead, and the page full, is
-- patched without reading the table: a row after the page, one that stays
-- ahead of it, one of its own rows that stays in it.  Where a row that the
-- page does not hold was before a change, the change's old values tell:
-- capture carries a page's order columns when the watch() spec names its
-- query.  A row that leaves the page, enters ahead of it or comes from
-- there has the page read again.
CREATE TABLE q.lines (id int PRIMARY KEY, n int, body text);
INSERT INTO q.lines SELECT i, i * 10, 'line ' || i FROM generate_series(1, 1000) i;
CREATE INDEX ON q.lines (n);
ANALYZE q.lines;
CREATE TABLE q.pager AS SELECT '{"$query": {"order_by": "n", "limit": 3, "offset": 500}}'::jsonb AS s;
SELECT ectosync.watch('q.lines', s) IS NOT NULL AS watched FROM q.pager;
CREATE TABLE q.lines_page AS SELECT ectosync.load('q.lines', s) AS v FROM q.pager;
SELECT jsonb_path_query_array(v, '$.rows[*].n') AS page FROM q.lines_page;
-- Each step syncs the page and says how many rows of q.lines it read:
-- by scans of the table, and through its indexes (the backend's counts,
-- which it reports only after a transaction).
CREATE FUNCTION q.lines_read() RETURNS bigint LANGUAGE sql AS $$
  SELECT pg_stat_get_xact_tuples_returned('q.lines'::regclass)
         + pg_stat_get_xact_tuples_fetched('q.lines'::regclass)
         + (SELECT sum(pg_stat_get_xact_tuples_fetched(indexrelid))
              FROM pg_index WHERE indrelid = 'q.lines'::regclass)
$$;
CREATE FUNCTION q.page_step() RETURNS TABLE (page jsonb, rows_read bigint) LANGUAGE plpgsql AS $$
DECLARE before bigint;
BEGIN
  PERFORM ectosync.wait_for_worker();
  before := q.lines_read();
  UPDATE q.lines_page SET v = regress.apply(v);
  RETURN QUERY SELECT jsonb_path_query_array(v, '$.rows[*].n'), q.lines_read() - before
    FROM q.lines_page;
END $$;
CREATE FUNCTION q.page_fresh() RETURNS boolean LANGUAGE sql AS $$
  SELECT (v - 'seq') = (regress.fresh(v) - 'seq') FROM q.lines_page
$$;
-- A line after the page changes, and one ahead of it changes but stays
-- ahead: nothing is read.
UPDATE q.lines SET body = 'edited', n = 9005 WHERE id = 900;
UPDATE q.lines SET body = 'edited', n = 15 WHERE id = 2;
SELECT * FROM q.page_step();
SELECT q.page_fresh() AS equal_to_a_fresh_load;
-- Lines of the page change, and one moves inside it: nothing is read.
UPDATE q.lines SET body = 'edited' WHERE id = 501;
UPDATE q.lines SET n = 5025 WHERE id = 502;
SELECT * FROM q.page_step();
SELECT q.page_fresh() AS equal_to_a_fresh_load;
-- A line of the page is deleted, another leaves it for the end: the page
-- is read again.  (Its next rows cannot be read from its first row on: a
-- row it has ahead may sort after that row by now, and its event still
-- pending, enter the page without ever shifting it.)
DELETE FROM q.lines WHERE id = 502;
UPDATE q.lines SET n = 20000 WHERE id = 503;
SELECT page, rows_read >= 500 AS read_again FROM q.page_step();
SELECT q.page_fresh() AS equal_to_a_fresh_load;
-- A line moves from ahead of the page into it; one is inserted ahead of
-- it: the page shifts, and is read again.
UPDATE q.lines SET n = 5051 WHERE id = 1;
SELECT page, rows_read >= 500 AS read_again FROM q.page_step();
INSERT INTO q.lines VALUES (0, 0, 'first');
SELECT page, rows_read >= 500 AS read_again FROM q.page_step();
SELECT q.page_fresh() AS equal_to_a_fresh_load;
SELECT ectosync.unwatch('q.lines');

-- The object form of where is equality; comparisons, in, and null tests
-- take conditions; the filter argument still works beside them.
SELECT jsonb_path_query_array(ectosync.load('q.posts',
  '{"$query": {"where": {"author_id": 1}, "order_by": "id"}}') -> 'rows', '$[*].id') AS ids;
SELECT jsonb_path_query_array(ectosync.load('q.posts',
  '{"$query": {"where": [["id", "in", [1, 3, 5]], ["inserted_at", ">=", "2024-01-03"]]}}') -> 'rows', '$[*].id') AS ids;
SELECT jsonb_path_query_array(ectosync.load('q.posts',
  '{"$query": {"order_by": {"title": "desc"}, "limit": 2}}', '{"author_id": 2}') -> 'rows', '$[*].id') AS ids;
-- "or" takes wheres (of either form), one of which must hold: the posts
-- of author 2, and the published ones from before January 4th.  Rows
-- enter and leave it by updates, as any where.
CREATE TABLE q.either AS SELECT ectosync.load('q.posts', '{"$query": {"where": [{"or": [{"author_id": 2},
  [["published", "=", true], ["inserted_at", "<", "2024-01-04"]]]}], "order_by": "id"}}') AS v;
SELECT jsonb_path_query_array(v, '$.rows[*].id') AS ids, v #> '{assocs,$query,where}' AS normalized
  FROM q.either;
UPDATE q.posts SET author_id = 1 WHERE id = 3;             -- leaves
UPDATE q.posts SET inserted_at = '2024-01-02' WHERE id = 4;  -- enters
SELECT ectosync.wait_for_worker();
SELECT jsonb_path_query_array(regress.apply(v), '$.rows[*].id') AS ids,
       (regress.apply(v) - 'seq') = (regress.fresh(v) - 'seq') AS equal_to_a_fresh_load
  FROM q.either;

-- Values compare as the server compares them: numeric's NaN and
-- infinities (which to_jsonb renders as strings) in numeric order, and
-- values neither rounded nor cut to the column's typmod.
CREATE TABLE q.nums (id int PRIMARY KEY, n numeric, m numeric(6,2), v varchar(3));
INSERT INTO q.nums VALUES (1, 1, 1.00, 'abc'), (2, 'NaN', 1.01, 'ab'), (3, '-Infinity', 2, 'b'),
                          (4, 5, 3, 'c');
SELECT ectosync.watch('q.nums') IS NOT NULL AS watched;
CREATE TABLE q.nv AS SELECT s, ectosync.load('q.nums', s) AS v FROM (VALUES
  ('{"$query": {"order_by": "n", "limit": 2}}'::jsonb),
  ('{"$query": {"order_by": {"n": "desc"}}}'),
  ('{"$query": {"where": [["n", ">", -3]]}}'),
  ('{"$query": {"where": [["m", "<=", 1.005]]}}'),
  ('{"$query": {"where": [["v", "=", "abcdef"]]}}')) x(s);
INSERT INTO q.nums VALUES (5, 'Infinity', 1, 'd');
UPDATE q.nums SET n = '-Infinity', m = 1.01 WHERE id = 4;
UPDATE q.nums SET n = 1.01, v = 'abc', m = 1 WHERE id = 3;
SELECT ectosync.wait_for_worker();
SELECT s -> '$query' AS query, jsonb_path_query_array(regress.apply(v), '$.rows[*].id') AS ids,
       (regress.apply(v) - 'seq') = (regress.fresh(v) - 'seq') AS equal_to_a_fresh_load
  FROM q.nv;
SELECT ectosync.unwatch('q.nums');

-- Shapes that cannot be kept get a clear error naming what is wrong.
\set VERBOSITY default
SELECT ectosync.load('q.posts', '{"$query": {"order_by": "nope"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.posts', '{"$query": {"where": [["title", "like", "p%"]]}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.posts', '{"$query": {"limit": -1}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.posts', '{"$query": {"where": [["inserted_at", ">", "soon"]]}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.posts', '{"$query": {"where": [["title", "=", null]]}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.posts', '{"$query": {"group_by": "title"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.posts', '{"$qeury": {}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.posts', '{"author": {"$query": {"limit": 1}}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ectosync.load('q.persons', '{"$query": {"order_by": "data"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- A parent whose key of the association is NULL has no list, however its
-- children's NULL links move in and out of a page: load() joins with =.
CREATE TABLE q.accounts (id int PRIMARY KEY, code text UNIQUE);
CREATE TABLE q.entries (id int PRIMARY KEY, account_code text REFERENCES q.accounts (code), n int);
INSERT INTO q.accounts VALUES (1, NULL), (2, 'b');
INSERT INTO q.entries VALUES (1, NULL, 1), (2, NULL, 2), (3, NULL, 3), (4, 'b', 4), (5, 'b', 5), (6, 'b', 6);
\set entries_page '{"entries": {"$query": {"order_by": "n", "limit": 10, "offset": 1}}}'
SELECT ectosync.watch('q.accounts', :'entries_page') IS NOT NULL AS watched;
CREATE TEMP TABLE page_of_null AS SELECT ectosync.load('q.accounts', :'entries_page') AS v;
UPDATE q.entries SET n = 6 WHERE id = 1;
UPDATE q.entries SET account_code = NULL WHERE id = 4;
UPDATE page_of_null SET v = regress.apply(v);
SELECT (v - 'seq') = (ectosync.load('q.accounts', :'entries_page') - 'seq') AS synced_equals_a_fresh_load,
       jsonb_path_query_array(v, '$.rows[*].entries.size()') AS list_sizes
FROM page_of_null;
SELECT ectosync.unwatch('q.accounts');

SELECT ectosync.unwatch('q.posts');
DROP SCHEMA q CASCADE;
