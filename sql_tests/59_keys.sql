-- Keys of every type ecto_sync accepts, and tables keyed without a primary
-- key.  Events carry key values as to_jsonb renders them (char(n)
-- blank-padded, booleans true/false, times in ISO 8601 and UTC), whatever
-- the writer's session settings; rows are ordered, searched and cached by
-- those texts.  Each held value, patched with changes(), and each value
-- synced event by event (regress.apply) equals a fresh load.
CREATE SCHEMA keys_test;
SET search_path = keys_test, public;
SET client_min_messages = warning;

-- char(4) keys: 'ab' is stored as 'ab  '; E'a\x01' sorts before 'a   '
-- (by the padded bytes, as to_jsonb renders them), not after 'a' as the
-- cast to text (which strips trailing blanks) would have it.
CREATE TABLE codes (k char(4) PRIMARY KEY, v int);
CREATE TABLE code_items (id int PRIMARY KEY,
                         k char(4) NOT NULL REFERENCES codes ON UPDATE CASCADE ON DELETE CASCADE);
INSERT INTO codes VALUES ('ab', 1), ('abc', 2), (E'a\x01', 3), ('a', 4), ('b', 5);
INSERT INTO code_items VALUES (1, 'ab'), (2, E'a\x01'), (3, 'a'), (4, 'ab');

-- date, timestamptz and boolean keys, and a has_many keyed by all three.
CREATE TABLE shifts (day date, starts timestamptz, night boolean, v int,
                     PRIMARY KEY (day, starts, night));
CREATE TABLE readings (id int PRIMARY KEY, day date NOT NULL, starts timestamptz NOT NULL,
                       night boolean NOT NULL, value numeric,
                       FOREIGN KEY (day, starts, night) REFERENCES shifts
                         ON UPDATE CASCADE ON DELETE CASCADE);
-- A timestamp key too.
CREATE TABLE ticks (at timestamp PRIMARY KEY, v int);
SET TimeZone = 'UTC';
INSERT INTO shifts VALUES
  ('2026-03-01', '2026-03-01 08:00+00', false, 1),
  ('2026-03-01', '2026-03-01 08:00+00', true, 2),
  ('2026-03-01', '2026-03-01 20:00:00.25+00', true, 3),
  ('0044-03-15 BC', '0044-03-15 12:00+00 BC', false, 4),
  ('infinity', 'infinity', false, 5),
  ('-infinity', '-infinity', true, 6),
  ('12026-01-01', '2026-03-01 08:00:00.5+00', false, 7);
INSERT INTO readings VALUES (1, '2026-03-01', '2026-03-01 08:00+00', true, 1.5),
                            (2, '2026-03-01', '2026-03-01 08:00+00', false, 2.5),
                            (3, 'infinity', 'infinity', false, 3.5);
INSERT INTO ticks VALUES ('2026-03-01 08:00', 1), ('2026-03-01 08:00:00.5', 2),
                         ('0001-01-01 00:00 BC', 3), ('infinity', 4);
RESET TimeZone;

-- No primary key: a UNIQUE index on NOT NULL columns is the key (the one
-- with the fewest columns; a unique index on a nullable column cannot be).
CREATE TABLE labels (code text NOT NULL, n int NOT NULL, note text, UNIQUE (code, n));
CREATE UNIQUE INDEX labels_note ON labels (note);
INSERT INTO labels VALUES ('x', 2, 'b'), ('x', 1, 'c'), ('w', 9, 'a');
-- The REPLICA IDENTITY index comes first, even over a smaller unique key:
-- rows are ordered by (a, b), not by b.
CREATE TABLE pairs (a int NOT NULL, b int NOT NULL, v text);
CREATE UNIQUE INDEX pairs_b ON pairs (b);
CREATE UNIQUE INDEX pairs_ab ON pairs (a, b);
ALTER TABLE pairs REPLICA IDENTITY USING INDEX pairs_ab;
INSERT INTO pairs VALUES (1, 30, 'p'), (2, 10, 'q'), (3, 20, 'r');
-- oid keys, and a list ordered and filtered by an oid: to_jsonb renders
-- oids as strings, yet they order as numbers (9 before 10).
CREATE TABLE blobs (id oid PRIMARY KEY, blob oid NOT NULL);
INSERT INTO blobs VALUES (9, 9), (10, 10), (100, 100);
-- Join rows that name a numeric key at another scale (1.0 for 1) link it
-- all the same, as load()'s join does.
CREATE TABLE amounts (id numeric PRIMARY KEY, v int);
CREATE TABLE marks (id int PRIMARY KEY);
CREATE TABLE amount_marks (amount numeric, mark int, PRIMARY KEY (amount, mark));
INSERT INTO amounts VALUES (1, 1), (2.5, 2);
INSERT INTO marks VALUES (1), (2);
INSERT INTO amount_marks VALUES (2.50, 1);
-- Foreign keys that hold a numeric key at another scale (2.50 for 2.5):
-- events, caches and interests take them for the key they reference.
CREATE TABLE funds (id numeric PRIMARY KEY, v int);
CREATE TABLE grants (id int PRIMARY KEY, fund_id numeric REFERENCES funds, note text);
INSERT INTO funds VALUES (2.5, 1), (3, 2);
INSERT INTO grants VALUES (1, 2.50, 'a'), (2, 3.000, 'b');

SELECT ectosync.watch('codes', '["code_items"]') IS NOT NULL AS watched;
SELECT ectosync.watch('shifts', '["readings"]') IS NOT NULL AS watched;
SELECT ectosync.watch('ticks') IS NOT NULL AS watched;
SELECT ectosync.watch('labels') IS NOT NULL AS watched;
SELECT ectosync.watch('pairs') IS NOT NULL AS watched;
SELECT ectosync.watch('blobs') IS NOT NULL AS watched;
\set amount_marks '{"marks": {"many_to_many": "marks", "through": "amount_marks", "owner_columns": ["amount"], "target_columns": ["mark"]}}'
SELECT ectosync.watch('amounts', :'amount_marks') IS NOT NULL AS watched;
SELECT ectosync.watch('funds', '["grants"]') IS NOT NULL AS watched;
SELECT ectosync.watch('grants', '["fund"]') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker();

-- The holder's session renders dates and times otherwise: values do not.
SET TimeZone = 'Asia/Tokyo';
SET DateStyle = 'German';
CREATE TEMP TABLE client (name text PRIMARY KEY, tbl regclass, assocs jsonb, copy jsonb,
                          version bigint, stateless jsonb, filter jsonb);
INSERT INTO client
  SELECT n, t, a, ectosync.hold(n, t, a, listen => false), 0, ectosync.load(t, a)
  FROM (VALUES ('codes', 'codes'::regclass, '["code_items"]'::jsonb),
               ('shifts', 'shifts', '["readings"]'), ('ticks', 'ticks', '[]'),
               ('labels', 'labels', '[]'), ('pairs', 'pairs', '[]'), ('blobs', 'blobs', '[]'),
               ('blobs below 50', 'blobs',
                '{"$query": {"where": [["blob", "<", "50"]], "order_by": "blob"}}'),
               ('amounts', 'amounts', :'amount_marks'), ('funds', 'funds', '["grants"]'),
               ('grants', 'grants', '["fund"]')) v(n, t, a);
SELECT name, jsonb_pretty(copy -> 'rows') AS rows FROM client ORDER BY name;

-- Every holder takes its changes and every stateless copy its events; both
-- must equal a fresh load (in the holder's session).
CREATE FUNCTION pg_temp.step()
  RETURNS TABLE (name text, held_equals_a_fresh_load boolean, synced_equals_a_fresh_load boolean)
LANGUAGE plpgsql AS $$
DECLARE r record; c jsonb;
BEGIN
  PERFORM ectosync.wait_for_worker();
  FOR r IN SELECT * FROM client ORDER BY client.name LOOP
    c := ectosync.changes(r.name, r.version);
    UPDATE client SET copy = regress.patch(copy, c -> 'patch'),
                      version = (c ->> 'version')::bigint,
                      stateless = regress.apply(stateless)
      WHERE client.name = r.name;
  END LOOP;
  RETURN QUERY SELECT client.name, (copy - 'seq') = (ectosync.load(tbl, assocs, filter) - 'seq'),
                      (stateless - 'seq') = (ectosync.load(tbl, assocs, filter) - 'seq')
    FROM client ORDER BY client.name;
END $$;

-- The writer's session: another TimeZone and DateStyle.
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
UPDATE codes SET v = 10 WHERE k = 'ab';
UPDATE codes SET v = 30 WHERE k = E'a\x01';
INSERT INTO codes VALUES (E'a\x02', 6), (E'\x01', 7);
UPDATE codes SET k = E'a\x03' WHERE k = 'b';
UPDATE code_items SET k = E'a\x02' WHERE id = 4;
DELETE FROM codes WHERE k = 'abc';
UPDATE shifts SET v = v + 10;
INSERT INTO shifts VALUES ('01/03/2026', '01/03/2026 04:00', false, 8);
UPDATE shifts SET night = NOT night WHERE v = 13;
UPDATE shifts SET starts = starts + interval '1 hour' WHERE v = 12;
INSERT INTO readings VALUES (4, '01/03/2026', '01/03/2026 04:00', false, 4.5),
                            (5, '15/03/0044 BC', '15/03/0044 12:00+00 BC', false, 5.5);
DELETE FROM shifts WHERE day = '-infinity';
UPDATE ticks SET v = v + 10;
INSERT INTO ticks VALUES ('01/03/2026 08:00:00.25', 5);
DELETE FROM ticks WHERE at = 'infinity';
UPDATE labels SET note = 'd' WHERE code = 'x' AND n = 1;
UPDATE labels SET n = 0 WHERE code = 'x' AND n = 2;
INSERT INTO labels VALUES ('a', 5, NULL);
UPDATE pairs SET a = 0 WHERE b = 20;
DELETE FROM pairs WHERE b = 10;
UPDATE blobs SET blob = 11 WHERE id = 9;
UPDATE blobs SET blob = 8 WHERE id = 100;
INSERT INTO blobs VALUES (1000, 20), (99, 99), (5, 5);
INSERT INTO amount_marks VALUES (1.0, 1), (1.00, 2), (2.5, 2);
DELETE FROM amount_marks WHERE amount = 2.50 AND mark = 1;

SET TimeZone = 'Asia/Tokyo';
SET DateStyle = 'German';
SELECT * FROM pg_temp.step();
SELECT name, jsonb_pretty(copy -> 'rows') AS rows FROM client ORDER BY name;

-- A row named by a foreign key at another scale changes, then a row that
-- names it.
UPDATE funds SET v = v + 10;
SELECT * FROM pg_temp.step() WHERE name IN ('funds', 'grants');
UPDATE grants SET note = 'c' WHERE id = 1;
INSERT INTO grants VALUES (3, 3.0, 'd');
SELECT * FROM pg_temp.step() WHERE name IN ('funds', 'grants');
UPDATE funds SET v = v + 10;
SELECT * FROM pg_temp.step() WHERE name IN ('funds', 'grants');
-- A row moves to a parent that its foreign key names at another scale; the
-- parent changes; another row moves to it by that same text.
UPDATE grants SET fund_id = 2.500 WHERE id = 2;
SELECT * FROM pg_temp.step() WHERE name IN ('funds', 'grants');
UPDATE funds SET v = v + 10;
SELECT * FROM pg_temp.step() WHERE name IN ('funds', 'grants');
INSERT INTO grants VALUES (4, 2.500, 'e');
SELECT * FROM pg_temp.step() WHERE name IN ('funds', 'grants');
SELECT jsonb_pretty(copy -> 'rows') AS rows FROM client WHERE name = 'grants';
-- Another row moves to it by an UPDATE, after the parent changed: the
-- parent is read from the cache, where it is one entry whatever the text.
UPDATE grants SET fund_id = 2.500 WHERE id = 3;
SELECT * FROM pg_temp.step() WHERE name IN ('funds', 'grants');
-- A filtered value is woken by the events its keys name: its grant names
-- the fund 2.500, the fund's events say 2.5.
INSERT INTO client SELECT 'grant 2', 'grants', '["fund"]',
  ectosync.hold('grant 2', 'grants', '["fund"]', '{"id": 2}', listen => false), 0, NULL;
UPDATE funds SET v = v + 1 WHERE id = 2.5;
SELECT ectosync.wait_for_worker() AS drained;
SELECT jsonb_path_query_array(ectosync.changes('grant 2'), '$.patch[*].value') AS fund_v,
       (SELECT v FROM funds WHERE id = 2.5) AS v;
SELECT ectosync.release('grant 2') AS released;
DELETE FROM client WHERE name = 'grant 2';

-- char(n) of two lengths: an item's box 'ab ' (char(3)) is the box
-- 'ab   ' (char(5)), as their = says.
CREATE TABLE boxes (code char(5) PRIMARY KEY, v int);
CREATE TABLE box_items (id int PRIMARY KEY, box char(3) REFERENCES boxes, note text);
INSERT INTO boxes VALUES ('ab', 1), ('cd', 2);
INSERT INTO box_items VALUES (1, 'ab', 'x');
SELECT ectosync.watch('boxes', '["box_items"]') IS NOT NULL AS watched;
SELECT ectosync.watch('box_items', '[{"owner": {"belongs_to": "boxes", "columns": ["box"]}}]')
  IS NOT NULL AS watched;
INSERT INTO client
  SELECT n, t, a, ectosync.hold(n, t, a, listen => false), 0, ectosync.load(t, a)
  FROM (VALUES ('boxes', 'boxes'::regclass, '["box_items"]'::jsonb),
               ('box_items', 'box_items',
                '[{"owner": {"belongs_to": "boxes", "columns": ["box"]}}]')) v(n, t, a);
UPDATE box_items SET note = 'y' WHERE id = 1;
INSERT INTO box_items VALUES (2, 'ab', 'z');
SELECT * FROM pg_temp.step() WHERE name IN ('boxes', 'box_items');
UPDATE boxes SET v = 10 WHERE code = 'ab';
UPDATE box_items SET box = 'cd' WHERE id = 1;
SELECT * FROM pg_temp.step() WHERE name IN ('boxes', 'box_items');
SELECT name, jsonb_pretty(copy -> 'rows') AS rows FROM client
 WHERE name IN ('boxes', 'box_items') ORDER BY name;

-- A parent's key is read as the child's type without its length: the
-- handle 'abcdef' must not find the posts of 'abc' through a varchar(3)
-- foreign key (as CAST('abcdef' AS varchar(3)) would), nor a price 1.005
-- those of 1.01 through a numeric(6,2) one.
CREATE TABLE handles (id int PRIMARY KEY, handle text UNIQUE NOT NULL, price numeric UNIQUE);
CREATE TABLE handle_posts (id int PRIMARY KEY, handle varchar(3) REFERENCES handles (handle),
                           price numeric(6,2) REFERENCES handles (price));
INSERT INTO handles VALUES (1, 'abc', 1.01), (2, 'xyz', 2);
INSERT INTO handle_posts VALUES (10, 'abc', 1.01);
\set handle_assocs '{"by_handle": {"has_many": "handle_posts", "columns": ["handle"], "references": ["handle"]}, "by_price": {"has_many": "handle_posts", "columns": ["price"], "references": ["price"]}}'
SELECT ectosync.watch('handles', :'handle_assocs') IS NOT NULL AS watched;
-- And a bigint parent's key past int4's range has no children through an
-- int4 foreign key (none can hold it), rather than an error.
CREATE TABLE wide (id bigint PRIMARY KEY, v int);
CREATE TABLE narrow (id int PRIMARY KEY, wide_id int REFERENCES wide);
INSERT INTO wide VALUES (1, 1);
INSERT INTO narrow VALUES (1, 1);
SELECT ectosync.watch('wide', '["narrow"]') IS NOT NULL AS watched;
-- A numeric key written at another scale is one row, not two: its value
-- holds it once.  And oid keys, which to_jsonb writes as strings, link the
-- integers that reference them.
CREATE TABLE scaled (id numeric PRIMARY KEY, rank int, flag bool);
INSERT INTO scaled VALUES (1.0, 1, false), (2, 2, true);
SELECT ectosync.watch('scaled') IS NOT NULL AS watched;
CREATE TABLE blob_notes (id int PRIMARY KEY, blob_id int8 NOT NULL, note text);
\set blob_notes '{"notes": {"has_many": "blob_notes", "columns": ["blob_id"]}}'
SELECT ectosync.watch('blobs', :'blob_notes') IS NOT NULL AS watched;
-- A filter on a bytea foreign key: events carry its values as to_jsonb
-- writes them (hex), whatever the writer's bytea_output.
CREATE TABLE vaults (id int PRIMARY KEY, tag bytea UNIQUE);
CREATE TABLE vault_items (id int PRIMARY KEY, tag bytea REFERENCES vaults (tag), note text);
INSERT INTO vaults VALUES (1, '\x0102'), (2, '\x03');
SELECT ectosync.watch('vault_items') IS NOT NULL AS watched;
INSERT INTO client
  SELECT n, t, a, ectosync.hold(n, t, a, f, listen => false), 0, ectosync.load(t, a, f), f
  FROM (VALUES ('vault items', 'vault_items'::regclass, '[]'::jsonb, '{"tag": "\\x0102"}'::jsonb),
               ('handles', 'handles', :'handle_assocs', NULL),
               ('wide', 'wide', '["narrow"]', NULL),
               ('scaled by rank', 'scaled', '{"$query": {"order_by": "rank"}}', NULL),
               ('scaled flagged', 'scaled', '[]', '{"flag": true}'),
               ('blob notes', 'blobs', :'blob_notes', NULL)) v(n, t, a, f);
UPDATE handles SET handle = 'abcdef', price = 1.005 WHERE id = 2;
INSERT INTO wide VALUES (3000000000, 2);
UPDATE scaled SET id = 1.00 WHERE id = 1.0;
UPDATE scaled SET id = 1.000, flag = true WHERE id = 1.00;
INSERT INTO blob_notes VALUES (1, 9, 'a'), (2, 10, 'b');
UPDATE blob_notes SET blob_id = 100 WHERE id = 2;
SET bytea_output = 'escape';
INSERT INTO vault_items VALUES (1, '\x0102', 'a'), (2, '\x03', 'b');
RESET bytea_output;
SELECT * FROM pg_temp.step()
 WHERE name IN ('handles', 'wide', 'scaled by rank', 'scaled flagged', 'blob notes',
                'vault items');
SELECT name, jsonb_pretty(copy -> 'rows') AS rows FROM client
 WHERE name IN ('handles', 'scaled flagged', 'vault items') ORDER BY name;
-- A $query value past an int4 column's range compares as SQL compares it
-- (int4 < int8): every row is below it, not an error.
SELECT ectosync.load('narrow', '{"$query": {"where": [["wide_id", "<", 3000000000]]}}')
       -> 'rows' AS below;

-- A key longer than an event carries (64 kB: btree compression lets a
-- long, repetitive text key in) would be cut, and name another row: its
-- table gets a RELOAD marker instead, and values of it reload.
CREATE TABLE long_keys (k text PRIMARY KEY, v int);
INSERT INTO long_keys VALUES ('short', 1);
SELECT ectosync.watch('long_keys') IS NOT NULL AS watched;
SELECT ectosync.hold('long keys', 'long_keys', listen => false) IS NOT NULL AS held;
INSERT INTO long_keys VALUES (repeat('a', 70000), 2);
SELECT ectosync.wait_for_worker() AS drained;
SELECT regexp_replace(c ->> 'reloaded', ' \(RELOAD marker .*', '') AS reloaded,
       jsonb_path_query_array(c, '$.patch[0].value.rows[*].v') AS v
  FROM ectosync.changes('long keys') c;
UPDATE long_keys SET v = 3 WHERE k = 'short';
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('long keys') -> 'patch' AS patch;
SELECT ectosync.release('long keys') AS released;

-- Keys that cannot be: a type events cannot carry as to_jsonb renders it,
-- and a table whose only unique index allows NULLs.
CREATE TABLE spans (s interval PRIMARY KEY);
SELECT ectosync.watch('spans');
CREATE TABLE loose (a int, UNIQUE (a));
SELECT ectosync.watch('loose');
-- A deferrable primary key: two rows may have one key until the commit
-- (UPDATE SET id = 3 - id swaps 1 and 2), and the worker takes a key's
-- last event for its state.
CREATE TABLE swapped (id int PRIMARY KEY DEFERRABLE, v text);
SELECT ectosync.watch('swapped');
-- A key under a nondeterministic collation: 'Alice' = 'alice', which
-- would make one row two keys as events render them.
CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE logins (login text COLLATE nocase PRIMARY KEY);
SELECT ectosync.watch('logins');
-- bpchar without a length: not padded alike, as char(n) is.
CREATE TABLE bare (code bpchar PRIMARY KEY);
SELECT ectosync.watch('bare');
CREATE DOMAIN bare_code AS bpchar;
CREATE TABLE bare_domain (code bare_code PRIMARY KEY);
SELECT ectosync.watch('bare_domain');
-- Nor as a filter or $query column: a load compares it ignoring trailing
-- blanks, and patches as it renders ('a ' and 'a' differ).  IS NULL is exact.
CREATE TABLE bare_items (id int PRIMARY KEY, code bpchar, dcode bare_code);
SELECT ectosync.watch('bare_items') IS NOT NULL AS watched;
INSERT INTO bare_items VALUES (1, 'a ', 'a '), (2, NULL, NULL);
SELECT ectosync.load('bare_items', '[]', '{"code": "a"}');
SELECT ectosync.load('bare_items', '[]', '{"dcode": "a"}');
SELECT ectosync.load('bare_items', '{"$query": {"where": [["code", "=", "a"]]}}');
SELECT ectosync.load('bare_items', '{"$query": {"order_by": "dcode", "limit": 1}}');
SELECT ectosync.load('bare_items', '[]', '{"code": null}') -> 'rows' AS code_is_null;
-- Nor null on a json, jsonb or composite column: jsonb 'null' is no SQL
-- NULL and renders as null, and a composite of NULLs IS NULL and renders
-- as an object: a load and patches would disagree.
CREATE TYPE pair AS (a int, b int);
CREATE TABLE docs_f (id int PRIMARY KEY, meta jsonb, p pair, n int);
SELECT ectosync.watch('docs_f') IS NOT NULL AS watched;
SELECT ectosync.load('docs_f', '[]', '{"meta": null}');
SELECT ectosync.load('docs_f', '[]', '{"p": null}');
SELECT ectosync.load('docs_f', '[]', '{"n": null}') -> 'rows' AS n_is_null;
-- A foreign key that PostgreSQL accepts between columns whose values
-- render differently: varchar 'ab' references char(4) 'ab  '.  The
-- association it makes is refused, as a definition pairing them is.
CREATE TABLE tagged (id int PRIMARY KEY, k varchar(4) REFERENCES codes);
SELECT ectosync.watch('tagged', '["code"]');
SELECT ectosync.load('codes', '["tagged"]');

SELECT ectosync.release(name) FROM client ORDER BY name;
SELECT ectosync.unwatch(t::regclass)
  FROM (VALUES ('codes'), ('shifts'), ('ticks'), ('labels'), ('pairs'), ('blobs'), ('amounts'),
               ('funds'), ('grants'), ('boxes'), ('box_items'), ('bare_items'), ('handles'),
               ('scaled'), ('vault_items'), ('long_keys'), ('wide'), ('docs_f')) v(t);
RESET ALL;
DROP SCHEMA keys_test CASCADE;
