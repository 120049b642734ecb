-- Privileges: load() and sync() read as the caller.  Two roles hold values
-- of the same shapes; each value always equals the fresh load of its own
-- role, also under row level security, after changes.  Missing table or
-- column privileges give 42501; watch/unwatch need the tables' owner;
-- notification payloads carry no column values; the test helper
-- _events_since (it shows key values) is not executable by PUBLIC.
SET client_min_messages = warning;
CREATE ROLE regress_ectosync_a;
CREATE ROLE regress_ectosync_b;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  EXECUTE sql INTO r;
  RETURN CASE WHEN r IS NULL THEN 'ok (NULL)' ELSE 'ok' END;
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- the roles apply events through payloads a superuser reads for them (a
-- real client gets them by LISTEN)
CREATE TABLE payloads (seq bigint, payload text);
-- (the worker has logged the RELOAD markers of what came before: of
-- roles made or dropped too, which reach every value under policies)
SELECT ectosync.wait_for_worker() AS settled \gset
CREATE TEMP TABLE mark AS SELECT last_seq AS seq FROM ectosync.stats;
CREATE FUNCTION pg_temp.collect() RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO payloads SELECT seq, payload FROM ectosync._events_since((SELECT seq FROM mark));
  UPDATE mark SET seq = greatest(seq, (SELECT max(seq) FROM payloads));
  SELECT count(*) FROM payloads $$;
CREATE FUNCTION pg_temp.apply_collected(val jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
  FOR p IN SELECT payload FROM payloads WHERE seq > (val ->> 'seq')::bigint ORDER BY seq LOOP
    val := ectosync.sync(val, p);
  END LOOP;
  RETURN val;
END $$;
GRANT SELECT ON payloads TO PUBLIC;
SELECT pg_temp.collect() > 0 AS collected;

-- ==== table privileges: A may read posts but not tags ====
GRANT SELECT ON posts TO regress_ectosync_a, regress_ectosync_b;
GRANT SELECT ON tags, posts_tags TO regress_ectosync_b;
SELECT ectosync.watch('posts', '["tags"]') IS NOT NULL AS watched;
CREATE TABLE held (role text, shape text, v jsonb);
GRANT ALL ON held TO PUBLIC;

SET ROLE regress_ectosync_a;
SELECT pg_temp.try($$SELECT ectosync.load('posts', '["tags"]')$$) AS a_load_posts_tags;
SELECT pg_temp.try($$SELECT ectosync.load('posts')$$) AS a_load_posts;
INSERT INTO held SELECT 'a', 'posts', ectosync.load('posts');
SET ROLE regress_ectosync_b;
SELECT pg_temp.try($$SELECT ectosync.load('posts', '["tags"]')$$) AS b_load_posts_tags;
INSERT INTO held SELECT 'b', 'posts+tags', ectosync.load('posts', '["tags"]');
RESET ROLE;

UPDATE tags SET name = name || '*' WHERE id = (SELECT min(id) FROM tags);
UPDATE posts SET title = title || '*' WHERE id = (SELECT min(id) FROM posts);
SELECT pg_temp.collect() > 0 AS collected;

-- A cannot sync B's value (it would read tags); B can; both see posts
SET ROLE regress_ectosync_a;
SELECT pg_temp.try($$SELECT pg_temp.apply_collected(v) FROM held WHERE role = 'b'$$) AS a_syncs_b_value;
SELECT (pg_temp.apply_collected(v) - 'seq') = (ectosync.load('posts') - 'seq') AS a_synced
FROM held WHERE role = 'a';
SET ROLE regress_ectosync_b;
SELECT (pg_temp.apply_collected(v) - 'seq') = (ectosync.load('posts', '["tags"]') - 'seq') AS b_synced
FROM held WHERE role = 'b';
RESET ROLE;
UPDATE tags SET name = rtrim(name, '*') WHERE id = (SELECT min(id) FROM tags);
UPDATE posts SET title = rtrim(title, '*') WHERE id = (SELECT min(id) FROM posts);

-- ==== column privileges: every column of every table of the value ====
REVOKE SELECT ON posts FROM regress_ectosync_a;
GRANT SELECT (id, title) ON posts TO regress_ectosync_a;
SET ROLE regress_ectosync_a;
SELECT pg_temp.try($$SELECT ectosync.load('posts')$$) AS a_load_without_author_id;
SELECT pg_temp.try($$SELECT ectosync.sync(v, (SELECT payload FROM payloads WHERE payload::jsonb ->> 'table' = 'public.posts' ORDER BY seq DESC LIMIT 1)) FROM held WHERE role = 'a'$$)
  AS a_sync_without_author_id;
SELECT pg_temp.try($$SELECT ectosync._load_rows_where('posts', '[]', '{id}', '{1}')$$)
  AS a_rows_where_without_author_id;
RESET ROLE;
REVOKE ALL ON posts, tags, posts_tags FROM regress_ectosync_a, regress_ectosync_b;
SELECT ectosync.unwatch('posts', '["tags"]');
DELETE FROM held;

-- ==== a forged value of a table the role may not read ====
-- sync() checks the caller's privileges before it reads the log: neither a
-- RELOAD marker's reason (it names the table and what was done to it) nor
-- whether the table was written at all reaches a role that may not read it.
CREATE TABLE priv_secret (id int PRIMARY KEY);
SELECT ectosync.watch('priv_secret') IS NOT NULL AS watched;
CREATE TABLE forged AS SELECT ectosync.load('priv_secret') AS v;
GRANT SELECT ON forged TO PUBLIC;
TRUNCATE priv_secret;
INSERT INTO priv_secret VALUES (1);
SELECT ectosync.wait_for_worker() IS NOT NULL AS drained;
CREATE FUNCTION pg_temp.try_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; d text;
BEGIN
  EXECUTE sql INTO r;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || d || ')', '');
END $$;
SELECT (SELECT last_seq FROM ectosync.stats) AS last_seq \gset
SET ROLE regress_ectosync_a;
SELECT pg_temp.try_detail(format($$SELECT ectosync.sync(v, (v ->> 'epoch') || ':%s') FROM forged$$, :last_seq))
  AS a_syncs_a_truncated_secret;
RESET ROLE;
-- (the superuser is told why)
SELECT pg_temp.try_detail(format($$SELECT ectosync.sync(v, (v ->> 'epoch') || ':%s') FROM forged$$, :last_seq)) ~ '^ZE001: .*TRUNCATE of public.priv_secret'
  AS super_told_truncate;
SELECT ectosync.unwatch('priv_secret');
DROP TABLE priv_secret, forged;

-- ==== watch/unwatch by a role that does not own the tables ====
GRANT SELECT ON persons, posts TO regress_ectosync_a;
SET ROLE regress_ectosync_a;
SELECT pg_temp.try($$SELECT ectosync.watch('persons', '["posts"]')$$) AS a_watch;
RESET ROLE;
SELECT ectosync.watch('persons', '["posts"]') IS NOT NULL AS watched;
SET ROLE regress_ectosync_a;
SELECT pg_temp.try($$SELECT ectosync.unwatch('persons', '["posts"]')$$) AS a_unwatch;
SELECT pg_temp.try($$SELECT ectosync._refresh_watches(false)$$) AS a_refresh;
SELECT pg_temp.try($$SELECT count(*) FROM ectosync._events_since(0)$$) AS a_events_since;
RESET ROLE;
SELECT count(*) AS watch_kept FROM ectosync.watches WHERE root = 'persons'::regclass;
SELECT ectosync.unwatch('persons', '["posts"]');
REVOKE ALL ON persons, posts FROM regress_ectosync_a;

-- ==== a schema without USAGE ====
-- SELECT on a table of a schema the role may not use reads none of it: not
-- by its oid either, when another session shares its value.
CREATE SCHEMA priv_hr;
CREATE TABLE priv_hr.salaries (id int PRIMARY KEY, amount int);
INSERT INTO priv_hr.salaries VALUES (1, 100);
GRANT SELECT ON priv_hr.salaries TO regress_ectosync_a;
SELECT ectosync.watch('priv_hr.salaries') IS NOT NULL AS watched;
SELECT ectosync.hold('payroll', 'priv_hr.salaries', listen => false) IS NOT NULL AS held;
SELECT 'priv_hr.salaries'::regclass::oid AS salaries_oid \gset
SET ROLE regress_ectosync_a;
SELECT pg_temp.try(format($$SELECT ectosync.hold('x', %s::oid::regclass, listen => false)$$,
                          :salaries_oid)) AS a_hold_by_oid;
SELECT pg_temp.try(format($$SELECT ectosync.load(%s::oid::regclass)$$, :salaries_oid))
  AS a_load_by_oid;
RESET ROLE;
SELECT ectosync.release('payroll');
SELECT ectosync.unwatch('priv_hr.salaries');
DROP SCHEMA priv_hr CASCADE;

-- ==== the watches a role may see ====
-- A watch's spec holds its lists' constants (a $query's where: a tenant,
-- an email), of any table on its paths: a role sees the watches whose
-- every table it may read, no others (reading the root is not enough).
SELECT ectosync.watch('persons', '{"$query": {"where": [["name", "=", "a secret name"]]}}')
  IS NOT NULL AS watched;
SELECT ectosync.watch('persons', '{"posts": {"$query": {"where": [["title", "=", "a secret title"]]}}}')
  IS NOT NULL AS nested_watched;
SET ROLE regress_ectosync_a;
SELECT count(*) AS watches_seen_without_select FROM ectosync.watches;
RESET ROLE;
GRANT SELECT ON persons TO regress_ectosync_a;
SET ROLE regress_ectosync_a;
SELECT root, spec #>> '{$query,where,0,2}' AS constant, spec ? 'posts' AS nested
  FROM ectosync.watches;
RESET ROLE;
GRANT SELECT ON posts TO regress_ectosync_a;
SET ROLE regress_ectosync_a;
SELECT count(*) AS watches_seen_with_posts FROM ectosync.watches;
RESET ROLE;
REVOKE ALL ON posts FROM regress_ectosync_a;
REVOKE ALL ON persons FROM regress_ectosync_a;
SELECT ectosync.unwatch('persons');

-- ==== row level security: each person sees only their own rows ====
CREATE TABLE members (id int PRIMARY KEY, login text NOT NULL, name text);
CREATE TABLE diaries (id int PRIMARY KEY, member_id int REFERENCES members, body text);
CREATE TABLE rooms (id int PRIMARY KEY, title text);
CREATE TABLE rooms_members (room_id int REFERENCES rooms, member_id int REFERENCES members,
                            PRIMARY KEY (room_id, member_id));
INSERT INTO members VALUES (1, 'regress_ectosync_a', 'Ann'), (2, 'regress_ectosync_b', 'Bob'),
                           (3, 'nobody', 'Cid');
INSERT INTO diaries VALUES (10, 1, 'ann secret'), (11, 2, 'bob secret'), (12, 3, 'cid secret');
INSERT INTO rooms VALUES (100, 'lobby'), (101, 'attic');
INSERT INTO rooms_members VALUES (100, 1), (100, 2), (100, 3), (101, 2);
ALTER TABLE members ENABLE ROW LEVEL SECURITY;
ALTER TABLE diaries ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON members USING (login = current_user);
CREATE POLICY own ON diaries
  USING (EXISTS (SELECT 1 FROM members m WHERE m.id = member_id AND m.login = current_user));
GRANT SELECT ON members, diaries, rooms, rooms_members TO regress_ectosync_a, regress_ectosync_b;
SELECT ectosync.watch('members', '["diaries"]') IS NOT NULL AS watched;
SELECT ectosync.watch('rooms', '["members"]') IS NOT NULL AS watched;
SELECT ectosync.watch('diaries', '["member"]') IS NOT NULL AS watched;
CREATE TEMP TABLE shapes (n int, tbl regclass, assocs jsonb);
INSERT INTO shapes VALUES (1, 'members', '["diaries"]'), (2, 'rooms', '["members"]'),
                          (3, 'diaries', '["member"]');
GRANT SELECT ON shapes TO PUBLIC;
SELECT pg_temp.collect() > 0 AS collected;

-- The superuser fills the cache with every row (its syncs read them all).
INSERT INTO held SELECT 'super', n::text, ectosync.load(tbl, assocs) FROM shapes;
SET ROLE regress_ectosync_a;
INSERT INTO held SELECT 'a', n::text, ectosync.load(tbl, assocs) FROM shapes;
SET ROLE regress_ectosync_b;
INSERT INTO held SELECT 'b', n::text, ectosync.load(tbl, assocs) FROM shapes;
RESET ROLE;

-- what each role holds at first
SELECT role, shape, jsonb_path_query_array(v, '$.rows[*].id') AS ids,
       jsonb_path_query_array(v, 'strict $.**.body') AS bodies,
       jsonb_path_query_array(v, 'strict $.**.name') AS names
FROM held ORDER BY shape, role;

-- changes in every table (the diaries policy reads members: a change of
-- members makes the values that the policy applies to reload, as
-- 65_policy_sources shows; see DESIGN.md, "Privileges")
UPDATE diaries SET body = body || ' v2';
UPDATE members SET name = name || '!';
INSERT INTO diaries VALUES (13, 1, 'ann new'), (14, 2, 'bob new');
UPDATE diaries SET member_id = 2 WHERE id = 12;          -- Cid's diary moves to Bob
INSERT INTO members VALUES (4, 'regress_ectosync_a', 'Dee');
INSERT INTO diaries VALUES (15, 4, 'dee new');
INSERT INTO rooms_members VALUES (101, 1), (101, 3), (100, 4);
DELETE FROM rooms_members WHERE room_id = 100 AND member_id = 2;
DELETE FROM diaries WHERE id = 10;
-- Cid (no diaries left) becomes visible to A by an UPDATE of his own row:
-- he enters A's members lists of the rooms that join rows link him to
UPDATE members SET login = 'regress_ectosync_a' WHERE id = 3;
SELECT ectosync.wait_for_worker() AS drained;
SELECT pg_temp.collect() > 0 AS collected;

-- the superuser syncs first: the cache now holds every changed row
UPDATE held SET v = pg_temp.apply_collected(v) WHERE role = 'super';

-- every role's synced value equals its own fresh load; a value that sync()
-- says must be reloaded (ZE001) is loaded again, as a client does
CREATE FUNCTION pg_temp.sync_or_reload(val jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RETURN pg_temp.apply_collected(val);
EXCEPTION WHEN SQLSTATE 'ZE001' THEN
  RETURN ectosync.load((val ->> 'relid')::oid::regclass, val -> 'assocs') || '{"reloaded": true}';
END $$;
CREATE FUNCTION pg_temp.check_role(r text)
  RETURNS TABLE (shape text, reloaded boolean, equal boolean, ids jsonb, bodies jsonb)
  LANGUAGE sql AS $$
  SELECT h.shape, n.v ? 'reloaded',
         (n.v - 'seq' - 'seal' - 'reloaded') = (ectosync.load(s.tbl, s.assocs) - 'seq' - 'seal'),
         jsonb_path_query_array(n.v, '$.rows[*].id'), jsonb_path_query_array(n.v, 'strict $.**.body')
  FROM held h JOIN shapes s ON s.n::text = h.shape,
       LATERAL pg_temp.sync_or_reload(h.v) n(v)
  WHERE h.role = r ORDER BY h.shape $$;
SET ROLE regress_ectosync_a;
SELECT * FROM pg_temp.check_role('a');
SELECT jsonb_path_query_array(pg_temp.apply_collected(v), 'strict $.**.name') AS a_names FROM held WHERE role = 'a' AND shape = '2';
SET ROLE regress_ectosync_b;
SELECT * FROM pg_temp.check_role('b');
SELECT jsonb_path_query_array(pg_temp.apply_collected(v), 'strict $.**.name') AS b_names FROM held WHERE role = 'b' AND shape = '2';
RESET ROLE;
SELECT * FROM pg_temp.check_role('super');


-- ==== a page under row level security ====
-- A row that becomes visible ahead of a page shifts it: the caller did not
-- see it before, so it was not ahead of the page then, whatever its old
-- order column says (capture carries it: the watch names the page).
CREATE TABLE pages (id int PRIMARY KEY, k int NOT NULL, visible bool NOT NULL);
INSERT INTO pages VALUES (1, 1, true), (2, 2, true), (3, 3, true), (4, 0, false);
ALTER TABLE pages ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible ON pages USING (visible);
GRANT SELECT ON pages TO regress_ectosync_a;
SELECT ectosync.watch('pages', '{"$query": {"order_by": "k", "limit": 1, "offset": 1}}') IS NOT NULL
  AS watched;
SET ROLE regress_ectosync_a;
INSERT INTO held SELECT 'a', 'page', ectosync.load('pages', '{"$query": {"order_by": "k", "limit": 1, "offset": 1}}');
SELECT jsonb_path_query_array(v, '$.rows[*].id') AS page FROM held WHERE shape = 'page';
RESET ROLE;
UPDATE pages SET visible = true WHERE id = 4;
SELECT ectosync.wait_for_worker() AS drained;
SELECT pg_temp.collect() > 0 AS collected;
SET ROLE regress_ectosync_a;
SELECT jsonb_path_query_array(pg_temp.apply_collected(v), '$.rows[*].id') AS page,
       (pg_temp.apply_collected(v) - 'seq' - 'seal') = (ectosync.load('pages', v -> 'assocs') - 'seq' - 'seal')
         AS equal_to_a_fresh_load
  FROM held WHERE shape = 'page';
RESET ROLE;
SELECT ectosync.unwatch('pages');

-- ==== payloads: the event id, the table and the operation, nothing else ====
SELECT count(*) > 0 AS some_payloads,
       bool_and((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload::jsonb) k)
                = '{event,op,table}') AS only_event_op_table,
       bool_or(payload ~ '(secret|Ann|Bob|Cid|lobby|attic|regress_)') AS any_column_value
FROM payloads;

DROP TABLE held, payloads, rooms_members, rooms, diaries, members, pages;
REVOKE ALL ON shapes FROM PUBLIC;
DROP ROLE regress_ectosync_a, regress_ectosync_b;
SELECT 1 AS usable;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
