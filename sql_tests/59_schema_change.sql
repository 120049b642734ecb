-- Migrations while clients hold values: ALTER TABLE of a watched table
-- that changes what its rows look like (a column added, dropped, renamed
-- or retyped; the table renamed) makes every value that holds the table
-- reload whole, with the reason, and leaves the others alone.  Never a
-- value with one row in the old shape and another in the new.
CREATE SCHEMA mig;
SET search_path = mig, public;
CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE books (id int PRIMARY KEY, author_id int REFERENCES authors, title text NOT NULL);
CREATE TABLE other (id int PRIMARY KEY, v text);
INSERT INTO authors VALUES (1, 'Ann'), (2, 'Bo');
INSERT INTO books VALUES (10, 1, 'Alpha'), (11, 1, 'Beta'), (12, 2, 'Gamma');
INSERT INTO other VALUES (1, 'x');
SELECT ectosync.watch('authors', '["books"]') IS NOT NULL AS watched;
SELECT ectosync.watch('other') IS NOT NULL AS watched;

-- Held values: all authors with their books (shared between sessions),
-- one author (filtered), and a table that no migration touches.
CREATE TEMP TABLE client (name text PRIMARY KEY, copy jsonb, version bigint);
INSERT INTO client VALUES
  ('all', ectosync.hold('all', 'authors', '["books"]', listen => false), 0),
  ('ann', ectosync.hold('ann', 'authors', '["books"]', '{"id": 1}', listen => false), 0),
  ('other', ectosync.hold('other', 'other', listen => false), 0);
-- Asks each value for its changes, applies them, and tells whether it
-- reloaded (and why, without the marker's id) and equals a fresh load.
CREATE FUNCTION pg_temp.step()
  RETURNS TABLE (name text, reloaded text, whole boolean, equal_to_a_fresh_load boolean)
LANGUAGE plpgsql AS $$
DECLARE c jsonb; r record;
BEGIN
  PERFORM ectosync.wait_for_worker();
  FOR r IN SELECT * FROM client ORDER BY 1 LOOP
    c := ectosync.changes(r.name, r.version);
    UPDATE client SET copy = regress.patch(client.copy, c -> 'patch'),
                      version = (c ->> 'version')::bigint WHERE client.name = r.name;
    RETURN QUERY SELECT r.name, regexp_replace(c ->> 'reloaded', ' \(RELOAD marker .*', ''),
                        coalesce(c -> 'patch' -> 0 ->> 'path' = '', false),
                        (client.copy - 'seq') = (regress.fresh(client.copy) - 'seq')
                   FROM client WHERE client.name = r.name;
  END LOOP;
END $$;

-- A column added to the association's table, with a default: every book
-- has it now.  The values holding books reload; "other" does not.
ALTER TABLE books ADD COLUMN pages int DEFAULT 100;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(copy, '$.rows[*].books[*].pages') AS pages FROM client WHERE name = 'all';

-- Writers go on: a change after the migration is a patch again.
UPDATE books SET pages = 250 WHERE id = 11;
SELECT * FROM pg_temp.step();

-- A column of the root renamed, then dropped.
ALTER TABLE authors RENAME COLUMN name TO full_name;
SELECT * FROM pg_temp.step();
SELECT copy -> 'rows' -> 0 AS ann FROM client WHERE name = 'ann';
ALTER TABLE books DROP COLUMN pages;
SELECT * FROM pg_temp.step();

-- A key column retyped (int to bigint renders the same) and the table
-- renamed: the value's "table" names it anew.
ALTER TABLE books ALTER COLUMN author_id TYPE bigint;
ALTER TABLE authors RENAME TO writers;
SELECT * FROM pg_temp.step();
SELECT copy ->> 'table' AS table FROM client WHERE name = 'all';

-- The stateless path: sync() of a value loaded before a migration raises
-- ZE001 with the reason.
CREATE TEMP TABLE stateless AS SELECT ectosync.load('writers', '["books"]') AS val;
ALTER TABLE writers ADD COLUMN born int;
UPDATE writers SET born = 1970 WHERE id = 2;
SELECT ectosync.wait_for_worker();
SELECT regress.reload_reason(val) AS must_reload FROM stateless;
SELECT * FROM pg_temp.step();

-- Capture has no gap: ALTER TABLE ... DISABLE TRIGGER leaves ecto_sync's
-- capture triggers enabled, and they fire ALWAYS, also under
-- session_replication_role = replica (logical replication's apply).  A
-- capture trigger found disabled may have missed changes: the values that
-- hold its table reload.
ALTER TABLE books DISABLE TRIGGER ALL;
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'books'::regclass AND tgname LIKE 'ectosync%' ORDER BY 1;
UPDATE books SET title = 'Beta 2' WHERE id = 11;
ALTER TABLE books ENABLE TRIGGER ALL;
SET session_replication_role = replica;
UPDATE books SET title = 'Gamma 2' WHERE id = 12;
RESET session_replication_role;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(copy, '$.rows[*].books[*].title') AS titles FROM client WHERE name = 'all';

-- A session that holds the value after the migration gets it in the new
-- shape, not an older shared copy.
SELECT (ectosync.hold('late', 'writers', '["books"]', listen => false) - 'seq')
       = (ectosync.load('writers', '["books"]') - 'seq') AS late_hold_is_fresh;

-- A migration's own transaction may not hold, read or sync a value of a
-- table it reshapes: what it read would keep the new shape if the
-- migration rolled back (the marker that reloads the others' values comes
-- before the value's seq).  After the rollback, all is as before.
\set VERBOSITY terse
BEGIN;
ALTER TABLE writers ADD COLUMN rolled_back int;
SELECT ectosync.hold('in migration', 'writers', '["books"]', listen => false);
ROLLBACK;
BEGIN;
ALTER TABLE books ADD COLUMN rolled_back int;
SELECT ectosync.changes('late');
ROLLBACK;
\set VERBOSITY default
SELECT * FROM pg_temp.step();
-- DDL that leaves the rows as they were (a constraint added) neither
-- refuses nor reloads.
BEGIN;
ALTER TABLE other ADD CONSTRAINT v_not_empty CHECK (v <> '');
SELECT ectosync.changes('other') -> 'patch' AS read_in_the_migration;
COMMIT;
SELECT * FROM pg_temp.step();

-- A column's type altered: an enum's value renamed (ALTER TYPE ... RENAME
-- VALUE) renders every row that holds it anew while no row changed, and
-- so does an attribute of a composite type renamed.  The values holding
-- the table reload; "other" does not.
CREATE TYPE genre AS ENUM ('novel', 'essay');
CREATE TYPE blurb AS (line text);
ALTER TABLE books ADD COLUMN genre genre DEFAULT 'novel', ADD COLUMN blurb blurb;
SELECT * FROM pg_temp.step();
ALTER TYPE genre RENAME VALUE 'novel' TO 'fiction';
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(copy, '$.rows[*].books[*].genre') AS genres FROM client WHERE name = 'all';
UPDATE books SET blurb = ROW('a page-turner') WHERE id = 10;
SELECT * FROM pg_temp.step();
ALTER TYPE blurb RENAME ATTRIBUTE line TO tagline;
SELECT * FROM pg_temp.step();
SELECT copy #> '{rows,0,books,0,blurb}' AS blurb FROM client WHERE name = 'ann';
-- A value added renders no row otherwise: nothing reloads.
ALTER TYPE genre ADD VALUE 'poem';
SELECT * FROM pg_temp.step();
-- A typed table (CREATE TABLE ... OF a composite type): its columns are the
-- type's attributes, renamed with them.
CREATE TYPE entry AS (id int, line text);
CREATE TABLE notes OF entry (PRIMARY KEY (id));
INSERT INTO notes VALUES (1, 'first');
SELECT ectosync.watch('notes') IS NOT NULL AS watched;
INSERT INTO client VALUES ('notes', ectosync.hold('notes', 'notes', listen => false), 0);
ALTER TYPE entry RENAME ATTRIBUTE line TO body CASCADE;
SELECT * FROM pg_temp.step();
SELECT copy -> 'rows' AS notes FROM client WHERE name = 'notes';
SELECT ectosync.release('notes'), ectosync.unwatch('notes');
DELETE FROM client WHERE name = 'notes';

-- A table that inherits from a watched one (INHERITS): its rows are its
-- own, not the watched table's.  The capture triggers are the watched
-- table's alone, and a value reads the watched table ONLY: a write to the
-- child, through it or through the parent, changes no value, and each
-- value still equals a fresh load.
CREATE TABLE other_archive () INHERITS (other);
INSERT INTO other_archive VALUES (7, 'archived');
UPDATE other SET v = 'archived, updated' WHERE id = 7;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(copy, '$.rows[*].id') AS other_ids FROM client WHERE name = 'other';
DROP TABLE other_archive;

-- The other way round: a watched table that inherits from one that is not.
-- ALTER TABLE of the parent changes the child's rows too (the event
-- trigger is told of the parent alone): values of the child reload.
CREATE TABLE other_base (note text);
CREATE TABLE heirs (id int PRIMARY KEY) INHERITS (other_base);
INSERT INTO heirs VALUES ('a', 1), ('b', 2);
SELECT ectosync.watch('heirs') IS NOT NULL AS watched;
INSERT INTO client VALUES ('heirs', ectosync.hold('heirs', 'heirs', listen => false), 0);
ALTER TABLE other_base ADD COLUMN flag boolean DEFAULT true;
UPDATE heirs SET note = 'c' WHERE id = 1;
SELECT * FROM pg_temp.step() WHERE name = 'heirs';
ALTER TABLE other_base RENAME COLUMN note TO body;
SELECT * FROM pg_temp.step() WHERE name = 'heirs';
SELECT copy -> 'rows' AS heirs FROM client WHERE name = 'heirs';
SELECT ectosync.release('heirs'), ectosync.unwatch('heirs');
DELETE FROM client WHERE name = 'heirs';
DROP TABLE heirs, other_base;

-- PostgreSQL renames a table through ALTER INDEX (or ALTER VIEW, ALTER
-- SEQUENCE, ...), and its columns through ALTER MATERIALIZED VIEW or ALTER
-- FOREIGN TABLE: followed as ALTER TABLE is.
CREATE TABLE spelled (id int PRIMARY KEY, title text);
INSERT INTO spelled VALUES (1, 'a');
SELECT ectosync.watch('spelled') IS NOT NULL AS watched;
INSERT INTO client VALUES ('spelled', ectosync.hold('spelled', 'spelled', listen => false), 0);
ALTER INDEX spelled RENAME TO respelled;
SELECT * FROM pg_temp.step() WHERE name = 'spelled';
ALTER MATERIALIZED VIEW respelled RENAME COLUMN title TO name;
UPDATE respelled SET name = 'b';
SELECT * FROM pg_temp.step() WHERE name = 'spelled';
SELECT copy -> 'table' AS "table", copy -> 'rows' AS rows FROM client WHERE name = 'spelled';
SELECT ectosync.release('spelled'), ectosync.unwatch('respelled');
DELETE FROM client WHERE name = 'spelled';
DROP TABLE respelled;

-- A capture trigger dropped by hand would lose every later change: it is
-- installed again in the same statement, and the next write is a patch.
DROP TRIGGER ectosync_capture ON other;
DROP TRIGGER ectosync_truncate ON other;
SELECT t.tgname, t.tgenabled FROM pg_catalog.pg_trigger t
 WHERE t.tgrelid = 'other'::regclass AND t.tgname LIKE 'ectosync%' ORDER BY t.tgname;
UPDATE other SET v = 'after the drop' WHERE id = 1;
SELECT * FROM pg_temp.step();

-- A foreign key dropped in a statement of its own, to be added again with
-- another ON DELETE: the watch stays (a WARNING says that its spec does
-- not resolve meanwhile, when no value of it can be read), and once the
-- key is back, the values reload and follow their tables again.
ALTER TABLE books DROP CONSTRAINT books_author_id_fkey;
SELECT ectosync.changes('ann');
ALTER TABLE books ADD FOREIGN KEY (author_id) REFERENCES writers ON DELETE CASCADE;
SELECT * FROM pg_temp.step();
UPDATE books SET title = 'Alpha 3' WHERE id = 10;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(copy, '$.rows[*].books[*].title') AS titles FROM client WHERE name = 'ann';

-- The association moved to another column (its foreign key dropped and
-- made on that column, in statements of their own): the values group
-- books by the new column now, which no watch captures yet.  They reload
-- and fail, naming it, until the watch is made again.
ALTER TABLE books ADD COLUMN editor_id int;
UPDATE books SET editor_id = 2 WHERE id = 10;
ALTER TABLE books DROP CONSTRAINT books_author_id_fkey;
ALTER TABLE books ADD CONSTRAINT books_editor_id_fkey FOREIGN KEY (editor_id) REFERENCES writers;
SELECT ectosync.changes('ann');
SELECT ectosync.watch('writers', '["books"]') IS NOT NULL AS watched_again;
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(copy, '$.rows[*].books[*].id') AS books FROM client WHERE name = 'all';

-- A table's key changes: a primary key added to a table keyed by a unique
-- index, then dropped and made on another column.  Values held its rows
-- in the old key's order, and events carried the old key's columns: the
-- watches resolve again, and the values reload; the worker reads on.
CREATE TABLE keyed (code text NOT NULL UNIQUE, tenant int NOT NULL, id int NOT NULL, v text);
INSERT INTO keyed VALUES ('b', 1, 2, 'x'), ('a', 2, 1, 'y');
SELECT ectosync.watch('keyed') IS NOT NULL AS watched;
SELECT ectosync.hold('keyed', 'keyed', listen => false) IS NOT NULL AS held;
SELECT worker_pid AS worker FROM ectosync.stats \gset
CREATE FUNCTION pg_temp.keyed_step() RETURNS TABLE (reloaded boolean, equal_to_a_fresh_load boolean)
LANGUAGE sql AS $$
  SELECT ectosync.wait_for_worker();
  SELECT c ? 'reloaded',
         (regress.patch(NULL, c -> 'patch') - 'seq') = (ectosync.load('keyed') - 'seq')
    FROM (SELECT ectosync.changes('keyed', 0) AS c) r $$;
ALTER TABLE keyed ADD PRIMARY KEY (tenant, id);
UPDATE keyed SET v = 'z' WHERE code = 'a';
SELECT * FROM pg_temp.keyed_step();
ALTER TABLE keyed DROP CONSTRAINT keyed_pkey, ADD PRIMARY KEY (id);
UPDATE keyed SET v = 'w' WHERE code = 'b';
SELECT * FROM pg_temp.keyed_step();
-- Without a primary key, the unique index with the fewest columns stands
-- for the key: made (CREATE UNIQUE INDEX) or dropped (DROP INDEX), it
-- changes the key too.  Rows sort otherwise under each key (code: a, b;
-- tenant and id: b, a; id: a, b).
CREATE UNIQUE INDEX keyed_tenant_id ON keyed (tenant, id);
ALTER TABLE keyed DROP CONSTRAINT keyed_pkey;
SELECT * FROM pg_temp.keyed_step();
ALTER TABLE keyed DROP CONSTRAINT keyed_code_key;
UPDATE keyed SET v = 'v' WHERE code = 'a';
SELECT * FROM pg_temp.keyed_step();
CREATE UNIQUE INDEX keyed_id ON keyed (id);
UPDATE keyed SET v = 'u' WHERE code = 'b';
SELECT * FROM pg_temp.keyed_step();
DROP INDEX keyed_id;
UPDATE keyed SET v = 't' WHERE code = 'a';
SELECT * FROM pg_temp.keyed_step();
SELECT jsonb_path_query_array(ectosync.changes('keyed', 0), '$.patch[0].value.rows[*].code') AS codes;
SELECT worker_pid = :worker AS same_worker FROM ectosync.stats;
-- ... and dropped by a member of the table's owner, who may drop its
-- indexes as the owner may.
CREATE ROLE regress_mig_owner;
CREATE ROLE regress_mig_member IN ROLE regress_mig_owner;
GRANT USAGE ON SCHEMA mig TO regress_mig_member;
ALTER TABLE keyed OWNER TO regress_mig_owner;
CREATE UNIQUE INDEX keyed_id ON keyed (id);
UPDATE keyed SET v = 's' WHERE code = 'b';
SELECT * FROM pg_temp.keyed_step();
SET ROLE regress_mig_member;
DROP INDEX keyed_id;
RESET ROLE;
UPDATE keyed SET v = 'r' WHERE code = 'a';
SELECT * FROM pg_temp.keyed_step();
SELECT ectosync.release('keyed');
SELECT ectosync.unwatch('keyed');

-- A key that changes with no statement the event trigger sees: REINDEX
-- CONCURRENTLY gives the index that stood for the key a new oid, and the
-- other unique index (the older one now) stands for it.  Events still
-- carry the old key's columns: a value does not take their texts for the
-- new key's, it reloads, and the load says what to do.
CREATE TABLE twin (a int NOT NULL, b int NOT NULL, v text);
CREATE UNIQUE INDEX twin_a ON twin (a);
CREATE UNIQUE INDEX twin_b ON twin (b);
INSERT INTO twin VALUES (1, 2, 'x'), (2, 1, 'y');
SELECT ectosync.watch('twin') IS NOT NULL AS watched;
SELECT ectosync.hold('twin', 'twin', listen => false) IS NOT NULL AS held;
REINDEX INDEX CONCURRENTLY twin_a;
UPDATE twin SET v = 'z' WHERE a = 1;
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('twin');
SELECT ectosync.watch('twin') IS NOT NULL AS watched_again;
SELECT jsonb_path_query_array(ectosync.changes('twin', 0), '$.patch[0].value.rows[*].v') AS v;
SELECT ectosync.release('twin');
SELECT ectosync.unwatch('twin');

SELECT ectosync.release(name) FROM (VALUES ('all'), ('ann'), ('other'), ('late')) v(name);
SELECT ectosync.unwatch('writers');
SELECT ectosync.unwatch('other');
RESET search_path;
DROP SCHEMA mig CASCADE;
DROP ROLE regress_mig_member, regress_mig_owner;
