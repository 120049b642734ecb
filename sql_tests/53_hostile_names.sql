-- Hostile names: schemas, tables, columns and foreign-key constraints
-- whose names hold double quotes, single quotes, spaces, semicolons,
-- backslashes, dots, SQL comments and non-ASCII letters.  Association
-- discovery, watch (triggers), load (generated SQL), capture (payloads with
-- the table's name, JSON-escaped) and sync all handle them: after changes,
-- synced values equal fresh loads; nothing is executed from a name.
SET client_min_messages = warning;
CREATE TABLE x (id int PRIMARY KEY);  -- what an injection would drop
CREATE SCHEMA "evil.schema ""x""; --";
SET search_path = public, "evil.schema ""x""; --";
CREATE TABLE "; DROP TABLE x; --" (
  "it's ""id""" int PRIMARY KEY,
  "na\me" text,
  "Ünï 表" text
);
ALTER TABLE "; DROP TABLE x; --" SET SCHEMA "evil.schema ""x""; --";
CREATE TABLE "evil.schema ""x""; --"."back\slash 'child'" (
  id int PRIMARY KEY,
  "parent ""ref"" id" int,
  body text,
  CONSTRAINT "fk; DROP TABLE x; --" FOREIGN KEY ("parent ""ref"" id")
    REFERENCES "evil.schema ""x""; --"."; DROP TABLE x; --" ON DELETE CASCADE
);
CREATE TABLE "Ünïcödé 表" ("ключ" text PRIMARY KEY, "$1" text);
CREATE TABLE "evil.schema ""x""; --"."j ""join""; --" (
  pid int CONSTRAINT "'); DROP TABLE x; --" REFERENCES "; DROP TABLE x; --" ON DELETE CASCADE,
  tid text CONSTRAINT "\\; --" REFERENCES "Ünïcödé 表" ON DELETE CASCADE,
  PRIMARY KEY (pid, tid)
);
INSERT INTO "; DROP TABLE x; --" VALUES (1, 'a\b', 'ü'), (2, '"q"', NULL), (3, ''';--', '表');
INSERT INTO "back\slash 'child'" VALUES (10, 1, 'c1'), (11, 1, 'c2'), (12, 2, 'c3');
INSERT INTO "Ünïcödé 表" VALUES ('ä', 'one'), ('"', 'quote'), ('\', 'backslash'), ('b''c', 'apos');
INSERT INTO "j ""join""; --" VALUES (1, 'ä'), (1, '"'), (2, '\');

-- discovery: the names and kinds found through the hostile constraints
SELECT name, kind, target FROM ectosync.associations('"; DROP TABLE x; --"');
SELECT name, kind, target FROM ectosync.associations('"back\slash ''child''"');
SELECT name, kind, target FROM ectosync.associations('"Ünïcödé 表"');

-- every association of the parent, nested one more level on the child
CREATE TEMP TABLE shape AS
SELECT '"; DROP TABLE x; --"'::regclass AS root,
       (SELECT jsonb_agg(CASE WHEN kind = 'has_many'
                              THEN jsonb_build_object(name, (SELECT jsonb_agg(b.name)
                                     FROM ectosync.associations(target) b))
                              ELSE to_jsonb(name) END ORDER BY name)
          FROM ectosync.associations('"; DROP TABLE x; --"')) AS spec;
SELECT spec FROM shape;
SELECT ectosync.watch(root, spec) AS watched FROM shape;
SELECT ectosync.watch('"Ünïcödé 表"', '["; DROP TABLE x; --"]') AS watched;
SELECT count(*) AS channels FROM shape, ectosync.channels(root, spec);

CREATE TEMP TABLE v AS
  SELECT ectosync.load(root, spec) AS parent,
         ectosync.load('"Ünïcödé 表"', '["; DROP TABLE x; --"]') AS tags,
         ectosync.load(root, spec, '{"na\\me": "a\\b"}') AS filtered
  FROM shape;
SELECT jsonb_pretty(parent -> 'rows' -> 0) FROM v;

-- changes through every table, keys with quotes and backslashes included
UPDATE "; DROP TABLE x; --" SET "na\me" = 'new "name"; --' WHERE "it's ""id""" = 1;
UPDATE "Ünïcödé 表" SET "$1" = 'changed \ ' WHERE "ключ" = '"';
INSERT INTO "Ünïcödé 表" VALUES ('new''; --', 'inserted');
INSERT INTO "j ""join""; --" VALUES (3, 'new''; --'), (2, '"');
DELETE FROM "j ""join""; --" WHERE pid = 1 AND tid = 'ä';
UPDATE "back\slash 'child'" SET "parent ""ref"" id" = 3 WHERE id = 11;
INSERT INTO "back\slash 'child'" VALUES (13, 2, 'c4');
DELETE FROM "; DROP TABLE x; --" WHERE "it's ""id""" = 2;
UPDATE "Ünïcödé 表" SET "ключ" = 'b''c2' WHERE "ключ" = 'b''c';
INSERT INTO "; DROP TABLE x; --" VALUES (4, 'a\b', 'filtered in');
SELECT ectosync.wait_for_worker() AS drained;

-- payloads are JSON with the table's name, escaped
SELECT DISTINCT payload::jsonb ->> 'table' AS payload_table, payload::jsonb ->> 'op' AS op
FROM v, ectosync._events_since((parent ->> 'seq')::bigint) ORDER BY 1, 2;

SELECT (regress.apply(parent) - 'seq') = (ectosync.load(root, spec) - 'seq') AS parent_synced,
       (regress.apply(tags) - 'seq') =
         (ectosync.load('"Ünïcödé 表"', '["; DROP TABLE x; --"]') - 'seq') AS tags_synced,
       (regress.apply(filtered) - 'seq') =
         (ectosync.load(root, spec, '{"na\\me": "a\\b"}') - 'seq') AS filtered_synced,
       jsonb_array_length(regress.apply(filtered) -> 'rows') AS filtered_rows
FROM v, shape;

-- A RELOAD marker (TRUNCATE, overflow) names its table as "schema.name",
-- unquoted, in the payload; sync() goes by the event log's record, never
-- by that name (anybody may NOTIFY a payload): one naming a table of this
-- value, at a seq with no marker, changes nothing.
CREATE TEMP TABLE v2 AS SELECT ectosync.load('"Ünïcödé 表"', '["; DROP TABLE x; --"]') AS tags;
CREATE FUNCTION pg_temp.try_reload(val jsonb, tbl regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE payload text;
BEGIN
  SELECT jsonb_build_object('event', format('%s:%s', val ->> 'epoch', (val ->> 'seq')::bigint + 1),
                            'table', n.nspname || '.' || c.relname, 'op', 'RELOAD')::text
    INTO payload FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
  RETURN CASE WHEN ectosync.sync(val, payload) = val THEN 'unchanged' ELSE 'changed' END;
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SELECT t AS marker_table, pg_temp.try_reload(tags, t) AS sync
FROM v2, unnest(ARRAY['"Ünïcödé 表"', '"j ""join""; --"', '"; DROP TABLE x; --"',
                      '"back\slash ''child''"']::regclass[]) t;
-- TRUNCATE sends such a marker, counted by the worker: the value must be
-- loaded again.
CREATE TEMP TABLE markers AS SELECT reload_markers FROM ectosync.stats;
TRUNCATE "Ünïcödé 表" CASCADE;
SELECT ectosync.wait_for_worker() AS drained;
SELECT s.reload_markers > m.reload_markers AS marker_sent FROM ectosync.stats s, markers m;
CREATE FUNCTION pg_temp.try_sync(val jsonb, id text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN CASE WHEN ectosync.sync(val, id) = val THEN 'unchanged' ELSE 'changed' END;
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SELECT pg_temp.try_sync(tags, format('%s:%s', epoch, last_seq)) AS truncated
FROM v2, ectosync.stats;

-- nothing was dropped or run
SELECT count(*) AS x_still_there FROM x;

SELECT ectosync.unwatch(root) FROM shape;
SELECT ectosync.unwatch('"Ünïcödé 表"');
SELECT count(*) AS triggers_left FROM pg_trigger
 WHERE tgname LIKE 'ectosync%' AND tgrelid::regclass::text ~ '(DROP|Ünï|join|child)';
DROP SCHEMA "evil.schema ""x""; --" CASCADE;
DROP TABLE "Ünïcödé 表", x;
RESET search_path;
SELECT 1 AS usable;
