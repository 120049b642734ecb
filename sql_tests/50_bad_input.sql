-- Bad input: every SQL function of ecto_sync given malformed, foreign or
-- hostile arguments answers with an ordinary error (SQLSTATE, message,
-- detail) and the backend stays usable (the last statement).  The table
-- `bad` below documents each input and its answer:
--
--   input                                             SQLSTATE
--   unknown table / schema, garbage table name        42P01 / 3F000 / 42602
--   a view, a sequence, the oid of no table           42809
--   table without a primary key                       0A000
--   key of a type ecto_sync cannot use (date, bytea)  0A000
--   unknown association, also nested                  42704
--   spec of the wrong JSON type                       22023 (a bare name
--                                                     and JSON null are
--                                                     accepted: ["name"], [])
--   filter: unknown column / uncastable value         42703 / 22P02, 22003
--   filter not an object                              22023
--   filter column whose values may be equal though    0A000
--     written differently (interval, float)
--   value not made by load(): wrong JSON type,        22023 (detail: which
--     missing keys, wrong "ectosync" version,         key is wrong)
--     keys of the wrong type
--   value with the relid of another table             its plan is resolved
--                                                     again: 42704, 0A000..
--   value of another epoch                            ZE001
--   garbage event, 100k-char event, bad JSON          22023 invalid event
--   event of another epoch, or ahead of every event   nothing to apply: the
--     (anybody may NOTIFY one)                        value as the worker
--                                                     loaded it
--   forged "table"/"op" in a payload                  the event log decides:
--                                                     only the seq is used
--   NULL arguments                                    STRICT: NULL
--   10 MB column values, 10 MB filter value           work
SET client_min_messages = warning;
-- Epochs, event ids, seqs and oids differ from run to run: masked.
CREATE FUNCTION pg_temp.mask(t text) RETURNS text LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(regexp_replace(t,
           '[0-9a-fA-F]{16}(:[0-9]+)?', '<id>', 'g'),
           '"seq": [0-9]+', '"seq": <n>', 'g'),
           '[0-9]{5,}', '<n>', 'g') $$;
-- Runs one statement: "ok: " and the start of its result, or
-- "SQLSTATE: message / detail".
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  EXECUTE sql INTO r;
  RETURN 'ok: ' || coalesce(left(pg_temp.mask(r), 60), 'NULL');
EXCEPTION WHEN OTHERS THEN
  DECLARE detail text;
  BEGIN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' ||
           left(pg_temp.mask(SQLERRM || coalesce(' / ' || nullif(detail, ''), '')), 150);
  END;
END $$;

CREATE TEMP TABLE bad (n serial, what text, sql text);
INSERT INTO bad (what, sql) VALUES
  -- tables
  ('unknown table', $$SELECT ectosync.load('no_such_table')$$),
  ('unknown schema', $$SELECT ectosync.watch('nosuch.posts')$$),
  ('empty table name', $$SELECT ectosync.load('')$$),
  ('table name of garbage', $$SELECT ectosync.channels('"; DROP TABLE posts; --')$$),
  ('a view', $$SELECT ectosync.watch('ectosync.stats')$$),
  ('a sequence', $$SELECT ectosync.load('bad_n_seq')$$),
  ('no primary key: watch', $$SELECT ectosync.watch('nopk')$$),
  ('no primary key: load', $$SELECT ectosync.load('nopk')$$),
  ('no primary key: channels', $$SELECT ectosync.channels('nopk')::text$$),
  ('interval key: watch', $$SELECT ectosync.watch('intervalkey')$$),
  ('interval key: load', $$SELECT ectosync.load('intervalkey')$$),
  ('bytea key: watch', $$SELECT ectosync.watch('byteakey')$$),
  ('jsonb key: watch', $$SELECT ectosync.watch('jsonbkey')$$),
  ('oid of a dropped table', $$SELECT ectosync.load(999999::oid::regclass)$$),
  -- association specs
  ('unknown association', $$SELECT ectosync.load('posts', '["nosuch"]')$$),
  ('unknown nested association', $$SELECT ectosync.watch('posts', '[{"tags": ["nosuch"]}]')$$),
  ('spec: a number', $$SELECT ectosync.load('posts', '42')$$),
  ('spec: a string', $$SELECT ectosync.load('posts', '"tags"')->>'assocs'$$),
  ('spec: null', $$SELECT ectosync.load('posts', 'null')->>'assocs'$$),
  ('spec: number in list', $$SELECT ectosync.watch('posts', '[1]')$$),
  ('spec: nested number', $$SELECT ectosync.load('posts', '[{"tags": 7}]')$$),
  ('spec: empty name', $$SELECT ectosync.load('posts', '[""]')$$),
  ('spec: unknown option', $$SELECT ectosync.load('posts', '[{"tags": {"through": "nosuch"}}]')$$),
  ('spec: deep nesting', $$SELECT ectosync.load('posts', (repeat('[', 5000) || repeat(']', 5000))::jsonb)$$),
  ('unwatch unknown assoc', $$SELECT ectosync.unwatch('posts', '["nosuch"]')$$),
  ('unwatch no watch', $$SELECT ectosync.unwatch('tags', '["posts"]')$$),
  ('channels unknown assoc', $$SELECT ectosync.channels('posts', '["nosuch"]')$$),
  ('associations of nopk', $$SELECT count(*) FROM ectosync.associations('nopk')$$),
  -- filters
  ('filter: unknown column', $$SELECT ectosync.load('posts', '[]', '{"nosuch": 1}')$$),
  ('filter: wrong type', $$SELECT ectosync.load('posts', '[]', '{"id": "abc"}')$$),
  ('filter: object value', $$SELECT ectosync.load('posts', '[]', '{"id": {"a": 1}}')$$),
  ('filter: array value', $$SELECT ectosync.load('posts', '[]', '{"id": [1, 2]}')$$),
  ('filter: not an object', $$SELECT ectosync.load('posts', '[]', '[1]')$$),
  ('filter: number overflow', $$SELECT ectosync.load('posts', '[]', '{"id": 1e300}')$$),
  ('filter: assoc name', $$SELECT ectosync.load('posts', '["tags"]', '{"tags": 1}')$$),
  ('filter: quote in column', $$SELECT ectosync.load('posts', '[]', '{"id\" = 1 OR \"id": 1}')$$),
  ('filter: interval column', $$SELECT ectosync.load('spans', '[]', '{"span": "1 day"}')$$),
  ('filter: float column', $$SELECT ectosync.load('spans', '[]', '{"ratio": 0}')$$),
  ('filter: enum column', $$SELECT ectosync.load('spans', '[]', '{"mood": "calm"}') -> 'rows' -> 0 ->> 'id'$$),
  ('filter: text[] column', $$SELECT ectosync.load('spans', '[]', '{"tags": "{a,b}"}') -> 'rows' -> 0 ->> 'id'$$),
  ('filter: interval IS NULL', $$SELECT jsonb_array_length(ectosync.load('spans', '[]', '{"span": null}') -> 'rows')::text$$),
  -- sync: values
  ('value: not an object', $$SELECT ectosync.sync('[1]', (SELECT max(e) FROM ev))$$),
  ('value: a string', $$SELECT ectosync.sync('"x"', (SELECT max(e) FROM ev))$$),
  ('value: empty object', $$SELECT ectosync.sync('{}', (SELECT max(e) FROM ev))$$),
  ('value: version 2', $$SELECT ectosync.sync(jsonb_set(v, '{ectosync}', '2'), e) FROM val, ev$$),
  ('value: version "1"', $$SELECT ectosync.sync(jsonb_set(v, '{ectosync}', '"1"'), e) FROM val, ev$$),
  ('value: no relid', $$SELECT ectosync.sync(v - 'relid', e) FROM val, ev$$),
  ('value: relid text', $$SELECT ectosync.sync(jsonb_set(v, '{relid}', '"posts"'), e) FROM val, ev$$),
  ('value: relid negative', $$SELECT ectosync.sync(jsonb_set(v, '{relid}', '-1'), e) FROM val, ev$$),
  ('value: relid fraction', $$SELECT ectosync.sync(jsonb_set(v, '{relid}', '1.5'), e) FROM val, ev$$),
  ('value: relid huge', $$SELECT ectosync.sync(jsonb_set(v, '{relid}', '99999999999999999999999'), e) FROM val, ev$$),
  ('value: relid of no table', $$SELECT ectosync.sync(jsonb_set(v, '{relid}', '4000000000'), e) FROM val, ev$$),
  ('value: relid of nopk', $$SELECT ectosync.sync(jsonb_set(v, '{relid}', to_jsonb('nopk'::regclass::oid::bigint)), e) FROM val, ev$$),
  ('value: no seq', $$SELECT ectosync.sync(v - 'seq', e) FROM val, ev$$),
  ('value: seq text', $$SELECT ectosync.sync(jsonb_set(v, '{seq}', '"1"'), e) FROM val, ev$$),
  ('value: no epoch', $$SELECT ectosync.sync(v - 'epoch', e) FROM val, ev$$),
  ('value: epoch number', $$SELECT ectosync.sync(jsonb_set(v, '{epoch}', '12'), e) FROM val, ev$$),
  ('value: epoch short', $$SELECT ectosync.sync(jsonb_set(v, '{epoch}', '"abc"'), e) FROM val, ev$$),
  ('value: epoch of another run', $$SELECT ectosync.sync(jsonb_set(v, '{epoch}', '"0123456789abcdef"'), e) FROM val, ev$$),
  ('value: no assocs', $$SELECT ectosync.sync(v - 'assocs', e) FROM val, ev$$),
  ('value: assocs array', $$SELECT ectosync.sync(jsonb_set(v, '{assocs}', '["tags"]'), e) FROM val, ev$$),
  ('value: assocs unknown', $$SELECT ectosync.sync(jsonb_set(v, '{assocs}', '{"nosuch": {}}'), e) FROM val, ev$$),
  ('value: no rows', $$SELECT ectosync.sync(v - 'rows', e) FROM val, ev$$),
  ('value: rows object', $$SELECT ectosync.sync(jsonb_set(v, '{rows}', '{}'), e) FROM val, ev$$),
  ('value: rows of garbage', $$SELECT ectosync.sync(jsonb_set(v, '{rows}', '[1, "x", null, [2]]'), e)->>'rows' FROM val, ev$$),
  ('value: filter a number', $$SELECT ectosync.sync(jsonb_set(v, '{filter}', '3'), e) FROM val, ev$$),
  ('value: filter unknown column', $$SELECT ectosync.sync(jsonb_set(v, '{filter}', '{"nosuch": 1}'), e)->>'filter' FROM val, ev$$),
  -- sync: events
  ('event: empty', $$SELECT ectosync.sync(v, '') FROM val$$),
  ('event: garbage', $$SELECT ectosync.sync(v, 'garbage') FROM val$$),
  ('event: 100k chars', $$SELECT ectosync.sync(v, repeat('x', 100000)) FROM val$$),
  ('event: 100k-char payload', $$SELECT ectosync.sync(v, '{"event": "' || repeat('9', 100000) || '"}') FROM val$$),
  ('event: json without event', $$SELECT ectosync.sync(v, '{"table": "public.tags", "op": "UPDATE"}') FROM val$$),
  ('event: event a number', $$SELECT ectosync.sync(v, '{"event": 12}') FROM val$$),
  ('event: bad json', $$SELECT ectosync.sync(v, '{"event": ') FROM val$$),
  ('event: NUL escape', $$SELECT ectosync.sync(v, '{"event": "\u0000"}') FROM val$$),
  ('event: seq overflow', $$SELECT ectosync.sync(v, (v->>'epoch') || ':99999999999999999999999') FROM val$$),
  ('event: negative seq', $$SELECT ectosync.sync(v, (v->>'epoch') || ':-5') FROM val$$),
  ('event: seq 0', $$SELECT ectosync.sync(v, (v->>'epoch') || ':0') FROM val$$),
  ('event: forged id (as far as loaded: applied)', $$SELECT ectosync.sync(v, (v->>'epoch') || ':9999999') = ectosync.sync(v, e) FROM val, ev$$),
  ('event: forged op', $$SELECT ectosync.sync(v, jsonb_set(e::jsonb, '{op}', '"DROP"')::text) FROM val, ev$$),
  ('event: forged table (the log says tags: applied)', $$SELECT ectosync.sync(v, jsonb_set(e::jsonb, '{table}', '"public.persons"')::text) = ectosync.sync(v, e) FROM val, ev$$),
  ('event: forged RELOAD (the log says UPDATE: applied)', $$SELECT ectosync.sync(v, jsonb_set(e::jsonb, '{op}', '"RELOAD"')::text) = ectosync.sync(v, e) FROM val, ev$$),
  ('event: forged RELOAD of another table (the log says tags: applied)', $$SELECT ectosync.sync(v, jsonb_set(jsonb_set(e::jsonb, '{op}', '"RELOAD"'), '{table}', '"public.labels"')::text) = ectosync.sync(v, e) FROM val, ev$$),
  ('event: another epoch (unchanged)', $$SELECT ectosync.sync(v, '0123456789abcdef:' || split_part(e::jsonb->>'event', ':', 2)) = v FROM val, ev$$),
  ('event: uppercase epoch', $$SELECT ectosync.sync(v, upper(e::jsonb->>'event')) FROM val, ev$$),
  -- other functions
  ('wait_for_worker negative', $$SELECT ectosync.wait_for_worker(-1)::text$$),
  ('_events_since negative', $$SELECT count(*) > 0 FROM ectosync._events_since(-1)$$),
  ('_load_rows_where lengths', $$SELECT ectosync._load_rows_where('posts', '[]', '{id}', '{}')$$),
  ('_load_rows_where column', $$SELECT ectosync._load_rows_where('posts', '[]', '{nosuch}', '{1}')$$),
  ('_load_rows_where NULL column', $$SELECT ectosync._load_rows_where('posts', '[]', '{NULL}', '{1}')$$),
  ('_load_rows_where bad value', $$SELECT ectosync._load_rows_where('posts', '[]', '{id}', '{abc}')$$),
  ('_jsonb_rebuild negative depth', $$SELECT ectosync._jsonb_rebuild('[1, {"a": [2]}]', -3)$$),
  ('value: seq past 64 bits', $$SELECT ectosync.sync(jsonb_set(v, '{seq}', '99999999999999999999'), e) FROM val, ev$$),
  ('value: relid past 32 bits', $$SELECT ectosync.sync(jsonb_set(v, '{relid}', to_jsonb((v->>'relid')::bigint + 4294967296)), e) FROM val, ev$$);

CREATE TABLE nopk (a int, b text);
CREATE TABLE intervalkey (d interval PRIMARY KEY);
CREATE TABLE byteakey (b bytea PRIMARY KEY);
CREATE TABLE jsonbkey (j jsonb PRIMARY KEY);
-- (interval '1 day' equals '24 hours', float 0 equals -0: a filter's
-- patches, which compare what to_jsonb writes, could not tell)
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE spans (id int PRIMARY KEY, span interval, ratio float8, mood mood, tags text[]);
INSERT INTO spans VALUES (1, '24 hours', -0, 'calm', '{a,b}');
SELECT ectosync.watch('spans') IS NOT NULL AS spans_watched;
SELECT ectosync.watch('posts', '["tags"]') IS NOT NULL AS watched;
CREATE TEMP TABLE val AS SELECT ectosync.load('posts', '["tags"]') AS v;
UPDATE tags SET name = name || '?' WHERE id = 1;
CREATE TEMP TABLE ev AS
  SELECT payload AS e FROM ectosync._events_since((SELECT (v->>'seq')::bigint FROM val)) LIMIT 1;
SELECT count(*) AS one_event FROM ev;

SELECT n, what, pg_temp.try(sql) AS result FROM bad ORDER BY n;

-- STRICT functions: a NULL argument gives NULL, no error
SELECT ectosync.sync(NULL, 'x') IS NULL AS sync_null_value,
       ectosync.sync(v, NULL) IS NULL AS sync_null_event
FROM val;
SELECT pg_temp.try($$SELECT ectosync.load(NULL)$$) AS load_null,
       pg_temp.try($$SELECT ectosync.load('posts', NULL)->>'assocs'$$) AS load_null_assocs,
       pg_temp.try($$SELECT ectosync.watch(NULL)$$) AS watch_null,
       pg_temp.try($$SELECT ectosync.watch('posts', NULL)$$) AS watch_null_assocs,
       pg_temp.try($$SELECT count(*) FROM ectosync.channels(NULL)$$) AS channels_null,
       pg_temp.try($$SELECT count(*) FROM ectosync.associations(NULL)$$) AS associations_null;

-- the value of another table (relid of tags, rows of posts): sync refuses
-- or returns something; it never crashes
SELECT pg_temp.try($$SELECT ectosync.sync(jsonb_set(v, '{relid}', to_jsonb('tags'::regclass::oid::bigint)), e) IS NOT NULL FROM val, ev$$) AS foreign_relid;
SELECT pg_temp.try($$SELECT ectosync.sync(jsonb_set(v, '{assocs}', '{}'), e) IS NOT NULL FROM val, ev$$) AS assocs_dropped;

-- huge values: a 10 MB column loads and syncs like any other
CREATE TABLE bigvals (id int PRIMARY KEY, body text);
INSERT INTO bigvals VALUES (1, repeat('a', 10 * 1024 * 1024)), (2, 'small');
SELECT ectosync.watch('bigvals') IS NOT NULL AS watched;
CREATE TEMP TABLE bv AS SELECT ectosync.load('bigvals') AS v;
SELECT length(v->'rows'->0->>'body') AS loaded_length FROM bv;
UPDATE bigvals SET body = repeat('b', 10 * 1024 * 1024) WHERE id = 2;
UPDATE bigvals SET body = 'shrunk' WHERE id = 1;
SELECT ectosync.wait_for_worker() AS drained;
SELECT (s - 'seq') = (ectosync.load('bigvals') - 'seq') AS synced_equals_load,
       length(s->'rows'->1->>'body') AS synced_length
FROM (SELECT regress.apply(v) AS s FROM bv) x;
-- A row that grows past a quarter of the row cache (ectosync.cache_size)
-- is not cached; its older, smaller record must not be served in its
-- place: the value takes the row from its table.
UPDATE bigvals SET body = 'cached' WHERE id = 2;
SELECT ectosync.wait_for_worker() AS drained;
DELETE FROM bv;
INSERT INTO bv SELECT ectosync.load('bigvals');
UPDATE bigvals SET body = repeat('d', (pg_size_bytes(current_setting('ectosync.cache_size')) / 4)::int + 1024)
 WHERE id = 2;
SELECT ectosync.wait_for_worker() AS drained;
SELECT (s - 'seq') = (ectosync.load('bigvals') - 'seq') AS synced_equals_load,
       length(s->'rows'->1->>'body') > 1024 AS synced_the_big_row
FROM (SELECT regress.apply(v) AS s FROM bv) x;
-- a 10 MB filter value
SELECT jsonb_array_length(ectosync.load('bigvals', '[]', jsonb_build_object('body', repeat('c', 10 * 1024 * 1024)))->'rows') AS no_rows;

SELECT ectosync.unwatch('bigvals');
SELECT ectosync.unwatch('posts', '["tags"]');
SELECT ectosync.unwatch('posts', '[]');  -- made by watch('posts', NULL)
UPDATE tags SET name = rtrim(name, '?') WHERE id = 1;
SELECT ectosync.unwatch('spans');
DROP TABLE nopk, intervalkey, byteakey, jsonbkey, bigvals, spans;
DROP TYPE mood;
SELECT 1 AS usable;
