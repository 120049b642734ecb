-- Capture: what the row trigger records, and when the worker sees it.
-- watch() installs these triggers; here they are created by hand, with the
-- arguments watch() uses: the number of primary-key columns, their attnums,
-- then the attnums of the other key columns to track.
CREATE SCHEMA capture_test;
SET search_path = capture_test, public;
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id bigint PRIMARY KEY, parent_id int REFERENCES parent, body text);
CREATE TABLE link (a int, b text, note text, PRIMARY KEY (a, b));
CREATE TRIGGER ectosync_capture AFTER INSERT OR UPDATE OR DELETE ON parent
  FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '1');
CREATE TRIGGER ectosync_capture AFTER INSERT OR UPDATE OR DELETE ON child
  FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '1', '2');
CREATE TRIGGER ectosync_capture AFTER INSERT OR UPDATE OR DELETE ON link
  FOR EACH ROW EXECUTE FUNCTION ectosync.capture('2', '1', '2');
CREATE TRIGGER ectosync_truncate AFTER TRUNCATE ON link
  FOR EACH STATEMENT EXECUTE FUNCTION ectosync.capture();

-- (the worker has logged the RELOAD markers of what came before: of
-- roles made or dropped too, which reach every value under policies)
SELECT ectosync.wait_for_worker() AS settled \gset
-- Events after this point are listed by seq relative to it.
CREATE TEMP TABLE mark AS SELECT last_seq AS seq FROM ectosync.stats;
CREATE FUNCTION pg_temp.events() RETURNS TABLE (n bigint, tbl text, op text, pk text, keys text)
  LANGUAGE sql AS $$
    SELECT e.seq - m.seq, e.tbl, e.op, e.pk, e.keys
      FROM mark m, ectosync._events_since(m.seq) e ORDER BY e.seq $$;
CREATE FUNCTION pg_temp.advance() RETURNS void
  LANGUAGE sql AS $$ UPDATE mark SET seq = (SELECT last_seq FROM ectosync.stats) $$;

-- Inserts, updates and deletes, with the key columns old>new.
INSERT INTO parent VALUES (1, 'one'), (2, 'two');
INSERT INTO child VALUES (10, 1, 'x');
UPDATE child SET parent_id = 2 WHERE id = 10;   -- moves: both parents are known
UPDATE child SET body = 'y' WHERE id = 10;      -- same parent
DELETE FROM child WHERE id = 10;
INSERT INTO link VALUES (1, 'it''s', 'composite key, quote in a value');
SELECT * FROM pg_temp.events();
SELECT pg_temp.advance();

-- An UPDATE that rewrites a row unchanged records nothing.
UPDATE parent SET name = name;
SELECT * FROM pg_temp.events();

-- Rolled-back transactions and savepoints never reach the worker; a
-- released savepoint's events do.
BEGIN;
INSERT INTO parent VALUES (3, 'three');
SAVEPOINT a;
INSERT INTO parent VALUES (4, 'rolled back');
ROLLBACK TO a;
SAVEPOINT b;
INSERT INTO parent VALUES (5, 'released');
RELEASE b;
COMMIT;
BEGIN;
INSERT INTO parent VALUES (6, 'rolled back');
ROLLBACK;
DO $$ BEGIN INSERT INTO parent VALUES (7, 'error'); RAISE EXCEPTION 'undo'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
SELECT * FROM pg_temp.events();
SELECT pg_temp.advance();

-- Nothing is visible before the commit.
BEGIN;
UPDATE parent SET name = 'uno' WHERE id = 1;
SELECT last_seq = (SELECT seq FROM mark) AS nothing_queued_yet FROM ectosync.stats;
COMMIT;
SELECT * FROM pg_temp.events();
SELECT pg_temp.advance();

-- A transaction past ectosync.max_xact_events keeps only its tables: the
-- worker sends one RELOAD marker per table instead of the events.
CREATE TEMP TABLE before AS SELECT reload_markers, rows_loaded FROM ectosync.stats;
SET ectosync.max_xact_events = 5;
INSERT INTO child SELECT g, 1, 'bulk' FROM generate_series(100, 120) g;
RESET ectosync.max_xact_events;
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - b.reload_markers AS new_reload_markers,
       s.rows_loaded - b.rows_loaded AS rows_loaded_for_them
  FROM ectosync.stats s, before b;
SELECT * FROM pg_temp.events();
SELECT pg_temp.advance();

-- TRUNCATE fires no row triggers: its statement trigger sends RELOAD.
UPDATE before SET reload_markers = (SELECT reload_markers FROM ectosync.stats);
TRUNCATE link;
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - b.reload_markers AS new_reload_markers FROM ectosync.stats s, before b;

-- Events of a prepared transaction could not be delivered: refused.
BEGIN;
INSERT INTO parent VALUES (8, 'prepared');
PREPARE TRANSACTION 'p1';

-- The trigger refuses to be misused.
CREATE TRIGGER bad BEFORE INSERT ON parent FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '1');
INSERT INTO parent VALUES (9, 'before trigger');
DROP TRIGGER bad ON parent;
CREATE TRIGGER bad AFTER INSERT ON parent FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '99');
INSERT INTO parent VALUES (9, 'bad attnum');
DROP TRIGGER bad ON parent;

-- The worker loaded each changed row once per event batch, and cached it.
SELECT rows_loaded > 0 AND cache_entries > 0 AS worker_loaded_rows,
       events_processed = events_queued AS all_processed
  FROM ectosync.stats;

RESET search_path;
DROP SCHEMA capture_test CASCADE;
