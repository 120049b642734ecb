-- sync(): which events apply, errors, reload-required (SQLSTATE ZE001),
-- privileges and row level security.
-- watch() may tell which triggers it replaces: not what is tested here
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.try_sync(val jsonb, e text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ectosync.sync(val, e);
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  DECLARE detail text;
  BEGIN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    -- epochs differ from run to run, seqs from test order
    RETURN SQLSTATE || ': ' || SQLERRM || ' / ' ||
           regexp_replace(coalesce(detail, ''), '[0-9a-f]{16}(:[0-9]+)?', '<id>', 'g');
  END;
END $$;
SELECT ectosync.watch('posts', '["comments"]') IS NOT NULL AS watched;
SELECT ectosync.watch('posts', '["tags"]') IS NOT NULL AS watched;
SELECT ectosync.watch('labels') IS NOT NULL AS watched;
CREATE TEMP TABLE v AS
  SELECT ectosync.load('posts', '["tags"]') AS posts, ectosync.load('labels') AS labels;

UPDATE tags SET name = name || '!' WHERE id = 2;
CREATE TEMP TABLE e AS SELECT payload FROM ectosync._events_since((SELECT (posts ->> 'seq')::bigint FROM v));
SELECT count(*) AS events, bool_and(payload LIKE '%"table": "public.tags", "op": "UPDATE"}') AS tag_updates FROM e;

-- the event applies once: again, or older than the value, it changes nothing
CREATE TEMP TABLE r AS SELECT ectosync.sync(posts, payload) AS once FROM v, e;
SELECT (once ->> 'seq')::bigint - (posts ->> 'seq')::bigint AS seq_advanced,
       (once - 'seq') = (ectosync.load('posts', '["tags"]') - 'seq') AS same,
       ectosync.sync(once, payload) = once AS twice_same
FROM r, v, e;
-- a bare event id works as well as the payload
SELECT ectosync.sync(posts, payload::jsonb ->> 'event') = once AS bare_id FROM r, v, e;
SELECT ectosync.sync(once, format('%s:1', once ->> 'epoch')) = once AS older FROM r;

-- an event of a table the value does not hold: its rows are unchanged (its
-- seq moves on: every event up to it was looked at)
SELECT (ectosync.sync(labels, payload) - 'seq') = (labels - 'seq') AS unchanged,
       (ectosync.sync(labels, payload) ->> 'seq')::bigint > (labels ->> 'seq')::bigint AS seq_moved
FROM v, e;

-- events out of order (one delivered late, or a payload that anybody may
-- NOTIFY, of a later seq): the value is brought up to an event through
-- every event before it, so the earlier one is not lost
CREATE TEMP TABLE before_two AS SELECT once AS val FROM r;
UPDATE tags SET name = name || '1' WHERE id = 1;
UPDATE tags SET name = name || '3' WHERE id = 3;
SELECT ectosync.wait_for_worker() AS drained;
CREATE TEMP TABLE two AS
  SELECT array_agg(payload ORDER BY seq) AS p
  FROM ectosync._events_since((SELECT (val ->> 'seq')::bigint FROM before_two));
SELECT (ectosync.sync(ectosync.sync(val, p[2]), p[1]) - 'seq') =
         (ectosync.load('posts', '["tags"]') - 'seq') AS later_first,
       ectosync.sync(val, p[2]) = ectosync.sync(ectosync.sync(val, p[1]), p[2]) AS same_either_way
FROM before_two, two;
UPDATE tags SET name = rtrim(name, '13') WHERE id IN (1, 3);

-- invalid values and events
SELECT pg_temp.try_sync('{}', payload) FROM e;
SELECT pg_temp.try_sync(jsonb_set(posts, '{ectosync}', '2'), payload) FROM v, e;
SELECT pg_temp.try_sync(posts - 'rows', payload) FROM v, e;
SELECT pg_temp.try_sync(posts, 'not an event') FROM v;
-- an event id ahead of every event: the value as far as the worker loaded
-- (nothing since it was loaded: unchanged); its notification comes later
SELECT pg_temp.try_sync(posts, format('%s:999999', posts ->> 'epoch')) FROM v;
\set VERBOSITY default
SELECT ectosync.sync(posts, 'not an event') FROM v;

-- an event of another server run (epoch) is nobody's now: unchanged; a
-- value of another run must be loaded again
SELECT pg_temp.try_sync(posts, '0123456789abcdef:999') FROM v;
SELECT pg_temp.try_sync(jsonb_set(posts, '{epoch}', '"0123456789abcdef"'), payload) FROM v, e;

-- a RELOAD marker (a transaction with more events than ectosync.max_xact_events)
SET ectosync.max_xact_events = 1;
UPDATE tags SET name = name || '?' WHERE id IN (1, 3);
RESET ectosync.max_xact_events;
SELECT ectosync.wait_for_worker();
CREATE TEMP TABLE marker AS
  SELECT format('{"event": "%s:%s", "table": "public.tags", "op": "RELOAD"}', epoch, last_seq) AS payload,
         format('%s:%s', epoch, last_seq) AS id
  FROM ectosync.stats;
SELECT pg_temp.try_sync(once, payload) AS held FROM r, marker;
SELECT (ectosync.sync(labels, payload) - 'seq') = (labels - 'seq') AS not_held FROM v, marker;
-- a bare marker id: the event log says which table, and why
SELECT pg_temp.try_sync(once, id) AS bare_marker_id FROM r, marker;
-- the log's record decides, not the table a payload names (anybody may
-- NOTIFY one): a marker of tags is one of tags whatever the payload says
SELECT pg_temp.try_sync(once, replace(payload, 'public.tags', 'public.gone')) AS unknown_name
FROM r, marker;
SELECT pg_temp.try_sync(once, replace(payload, 'public.tags', 'public.labels')) AS other_table
FROM r, marker;

-- privileges: SELECT on every table of the value
CREATE ROLE sync_reader;
GRANT USAGE ON SCHEMA ectosync TO sync_reader;
GRANT SELECT ON posts, tags, comments TO sync_reader;
GRANT SELECT ON v, r, e TO sync_reader;
-- the test helper that lists events (payloads) is not for PUBLIC
GRANT EXECUTE ON FUNCTION ectosync._events_since(bigint) TO sync_reader;
SET ROLE sync_reader;
SELECT pg_temp.try_sync(posts, payload) AS no_posts_tags FROM v, e;
RESET ROLE;
GRANT SELECT ON posts_tags, persons TO sync_reader;

-- row level security: rows are read as the caller, never from the cache
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY no_secrets ON comments FOR SELECT TO sync_reader USING (body <> 'secret');
SET ROLE sync_reader;
CREATE TEMP TABLE rls AS SELECT ectosync.load('posts', '["comments"]') AS val;
RESET ROLE;
INSERT INTO comments VALUES (100, 2, NULL, 'secret'), (101, 2, NULL, 'public');
UPDATE comments SET body = 'secret' WHERE id = (SELECT min(id) FROM comments WHERE body <> 'secret');
SET ROLE sync_reader;
UPDATE rls SET val = regress.apply(val);
SELECT (val - 'seq' - 'seal') = (ectosync.load('posts', '["comments"]') - 'seq' - 'seal') AS same,
       jsonb_path_query_array(val, '$.rows[*].comments[*] ? (@.id >= 100).body') AS new_bodies,
       jsonb_path_query_array(val, '$.rows[*].comments[*].body') @> '["secret"]' AS any_secret
FROM rls;
RESET ROLE;
SELECT jsonb_path_query_array(ectosync.load('posts', '["comments"]'), '$.rows[*].comments[*] ? (@.id >= 100).body') AS superuser_sees;

DROP POLICY no_secrets ON comments;
ALTER TABLE comments DISABLE ROW LEVEL SECURITY;
DELETE FROM comments WHERE id IN (100, 101);
-- a column added to a table that a value holds changes every row of it,
-- while events come only for the rows writers touch: the value must be
-- reloaded (ZE001, "Schema change"; sql_tests/59_schema_change.sql
-- follows migrations further), and the reloaded value has the column in
-- every row.  Rows entering later are read through a plan that the backend
-- keeps; PostgreSQL plans it again after DDL: they come with the column.
CREATE TEMP TABLE ddl AS SELECT ectosync.load('posts', '["comments"]') AS val;
INSERT INTO posts VALUES (90, NULL, 'before');
UPDATE ddl SET val = regress.apply(val);
ALTER TABLE posts ADD COLUMN mood text DEFAULT 'calm';
SELECT regress.reload_reason(val) AS must_reload FROM ddl;
UPDATE ddl SET val = ectosync.load('posts', '["comments"]');
INSERT INTO posts VALUES (91, NULL, 'after');
UPDATE ddl SET val = regress.apply(val);
SELECT jsonb_path_query_array(val, '$.rows[*] ? (@.id >= 90)') AS entered FROM ddl;
DELETE FROM posts WHERE id >= 90;
ALTER TABLE posts DROP COLUMN mood;
DROP TABLE ddl;
REVOKE ALL ON posts, tags, comments, posts_tags, persons FROM sync_reader;
REVOKE EXECUTE ON FUNCTION ectosync._events_since(bigint) FROM sync_reader;
REVOKE USAGE ON SCHEMA ectosync FROM sync_reader;
DROP TABLE rls, v, r, e;
DROP ROLE sync_reader;
SELECT ectosync.unwatch('posts');
SELECT ectosync.unwatch('labels');
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
