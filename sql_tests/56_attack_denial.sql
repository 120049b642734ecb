-- One role cannot deny service to others, nor reach what the README says
-- it may use (issue 14): watch() refuses temporary tables (the worker could
-- never read them: its batches would fail and send RELOAD markers);
-- ectosync.stats works for any role; a filter nested 300 levels deep gets
-- a clear SQLSTATE, not XX000; an ordinary role cannot raise
-- ectosync.max_xact_events past the superuser's bound; a TRUNCATE of one
-- watched table reloads only the values that hold it.
SET client_min_messages = warning;
CREATE ROLE attack_plain LOGIN;
CREATE SCHEMA attack_plain AUTHORIZATION attack_plain;
CREATE ROLE attack_holder LOGIN;

-- ==== watch() of a temporary table ====
SET ROLE attack_plain;
CREATE TEMP TABLE attack_tmp_t (id int PRIMARY KEY, v text);
SELECT ectosync.watch('attack_tmp_t');
SELECT count(*) AS watches_of_temporary_tables FROM ectosync.watches w
  JOIN pg_class c ON c.oid = w.root WHERE c.relpersistence = 't';
DROP TABLE attack_tmp_t;
RESET ROLE;

-- ==== ectosync.stats for a role granted nothing ====
SET ROLE attack_plain;
SELECT count(*) AS stats_rows FROM ectosync.stats;
RESET ROLE;

-- ==== a filter (and assocs) nested 300 levels deep ====
GRANT SELECT ON posts TO attack_plain;
CREATE FUNCTION pg_temp.outcome(sql text) RETURNS TABLE (raised boolean, internal_error boolean)
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  RETURN QUERY SELECT false, false;
EXCEPTION WHEN OTHERS THEN
  RETURN QUERY SELECT true, SQLSTATE = 'XX000' OR SQLERRM LIKE '%internal error%';
END $$;
SET ROLE attack_plain;
SELECT 'filter, arrays' AS nested, * FROM pg_temp.outcome(
  $$SELECT ectosync.load('posts', '[]', ('{"title": ' || repeat('[', 300) || repeat(']', 300) || '}')::jsonb)$$)
UNION ALL
SELECT 'filter, objects', * FROM pg_temp.outcome(
  $$SELECT ectosync.load('posts', '[]', ('{"title": ' || repeat('{"a": ', 300) || '1' || repeat('}', 300) || '}')::jsonb)$$)
UNION ALL
SELECT 'assocs', * FROM pg_temp.outcome(
  $$SELECT ectosync.load('posts', ('[' || repeat('{"a": [', 300) || repeat(']}', 300) || ']')::jsonb)$$);
RESET ROLE;
REVOKE SELECT ON posts FROM attack_plain;

-- ==== ectosync.max_xact_events: not above the superuser's bound ====
SET ROLE attack_plain;
SET ectosync.max_xact_events = 1000000;
SHOW ectosync.max_xact_events;
RESET ROLE;
SHOW ectosync.max_xact_events;
RESET ectosync.max_xact_events;

-- ==== TRUNCATE of one table does not reload the values of another ====
-- attack_holder holds values of attack_a (one shared, one filtered, its
-- session's own); attack_plain truncates its own watched table.
CREATE TABLE attack_a (id int PRIMARY KEY, v text);
INSERT INTO attack_a VALUES (1, 'a1'), (2, 'a2');
SELECT ectosync.watch('attack_a') IS NOT NULL AS watched;
GRANT SELECT ON attack_a TO attack_holder;
SET ROLE attack_plain;
CREATE TABLE attack_plain.b (id int PRIMARY KEY, v text);
INSERT INTO attack_plain.b VALUES (1, 'b1');
SELECT ectosync.watch('attack_plain.b') IS NOT NULL AS watched;
SELECT count(*) AS channels FROM ectosync.channels('attack_plain.b');
SET ROLE attack_holder;
SELECT ectosync.hold('a_all', 'attack_a', listen => false) -> 'rows' AS a_all,
       ectosync.hold('a_one', 'attack_a', '[]', '{"id": 1}', listen => false) -> 'rows' AS a_one;
SELECT ectosync.wait_for_worker() AS drained;
SELECT name, c -> 'patch' AS patch, c ? 'reloaded' AS reloaded, c -> 'version' AS version
  FROM unnest(ARRAY['a_all', 'a_one']) name, ectosync.changes(name, 0) c;
SET ROLE attack_plain;
TRUNCATE attack_plain.b;
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE attack_holder;
SELECT name, c -> 'patch' AS patch, c ? 'reloaded' AS reloaded, c -> 'version' AS version
  FROM unnest(ARRAY['a_all', 'a_one']) name, ectosync.changes(name, 0) c;
RESET ROLE;
-- and the values still follow their own table
UPDATE attack_a SET v = 'a1 v2' WHERE id = 1;
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE attack_holder;
SELECT name, c -> 'patch' AS patch, c ? 'reloaded' AS reloaded, c -> 'version' AS version
  FROM unnest(ARRAY['a_all', 'a_one']) name, ectosync.changes(name, 0) c;
SELECT ectosync.release('a_all') AND ectosync.release('a_one') AS released;
RESET ROLE;

-- ==== a role's share of the interest entries ====
-- One role may take ectosync.max_role_share (25%) of ectosync.max_held_values
-- (1024): its 257th value goes on without an entry of its own (it listens
-- to its tables' channels), and other roles still get theirs.
SHOW ectosync.max_role_share;
SET ROLE attack_holder;
SELECT count(*) AS changed FROM ectosync.wait_changes(0);
SELECT count(ectosync.hold('share_' || i, 'attack_a', '[]', jsonb_build_object('id', i),
                           listen => false)) AS held
  FROM generate_series(1, 260) i;
-- A value without an entry still comes back from a wait for all of the
-- session's values (nobody wakes the session for it: the wait looks at it
-- whenever the worker loaded events), also right after it was held.
RESET ROLE;
INSERT INTO attack_a VALUES (258, 'for a value without an entry');
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE attack_holder;
SELECT name, patch -> 0 ->> 'op' AS op FROM ectosync.wait_changes(5000);
RESET ROLE;
DELETE FROM attack_a WHERE id = 258;
SET ROLE attack_holder;
SELECT count(*) FILTER (WHERE channel IS NOT NULL) AS with_an_entry,
       count(*) FILTER (WHERE channel IS NULL) AS listening_to_tables
  FROM ectosync.held() WHERE name LIKE 'share\_%';
-- A held value's own channel cannot be guessed from its entry number: it
-- ends in 64 bits derived from a key only shared memory holds.
SELECT bool_and(channel ~ '^ectosync_held_[0-9]+_[0-9a-f]{16}$') AS channels_end_in_a_tag,
       count(DISTINCT substring(channel FROM '_([0-9a-f]{16})$')) AS distinct_tags
  FROM ectosync.held() WHERE channel IS NOT NULL AND name LIKE 'share\_%';
RESET ROLE;
GRANT SELECT ON attack_a TO attack_plain;
SET ROLE attack_plain;
SELECT ectosync.hold('other_role', 'attack_a', listen => false) IS NOT NULL AS held,
       (SELECT channel IS NOT NULL FROM ectosync.held() WHERE name = 'other_role') AS with_an_entry;
SELECT ectosync.release('other_role');
SET ROLE attack_holder;
SELECT count(ectosync.release('share_' || i)) AS released FROM generate_series(1, 260) i;
RESET ROLE;

-- ==== a role's share of the shared values' slots ====
-- Values that sessions share take slots (min(max_held_values, 1024)); one
-- role may take 25% of them however small its values: its 257th distinct
-- shape goes on as its session's own, and other roles still share theirs.
SET ROLE attack_holder;
SELECT count(ectosync.hold('slot_' || i, 'attack_a',
                           jsonb_build_object('$query', jsonb_build_object('where',
                             jsonb_build_array(jsonb_build_array('id', '=', i)))),
                           listen => false)) AS held
  FROM generate_series(1, 260) i;
SELECT count(*) FILTER (WHERE shared_by IS NOT NULL) AS shared,
       count(*) FILTER (WHERE shared_by IS NULL) AS own
  FROM ectosync.held() WHERE name LIKE 'slot\_%';
RESET ROLE;
SET ROLE attack_plain;
SELECT ectosync.hold('other_shape', 'attack_a', '{"$query": {"where": [["id", "=", 999]]}}',
                     listen => false) IS NOT NULL AS held,
       (SELECT shared_by IS NOT NULL FROM ectosync.held() WHERE name = 'other_shape') AS shared;
SELECT ectosync.release('other_shape');
SET ROLE attack_holder;
SELECT count(ectosync.release('slot_' || i)) AS released FROM generate_series(1, 260) i;
RESET ROLE;
REVOKE SELECT ON attack_a FROM attack_plain;

-- ==== look-alike triggers and other roles' drops ====
-- A role that owns no watched table cannot make the event triggers reload
-- or remove anything: a trigger it names ectosync_truncate, dropped with
-- its table, does not reload watched partitioned tables' values ...
CREATE TABLE attack_pt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE attack_pt1 PARTITION OF attack_pt FOR VALUES FROM (0) TO (100);
SELECT ectosync.watch('attack_pt') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker() AS drained;
SELECT last_seq AS before_fake FROM ectosync.stats \gset
SET ROLE attack_plain;
CREATE TEMP TABLE attack_fake (a int);
CREATE TRIGGER ectosync_truncate AFTER TRUNCATE ON attack_fake FOR EACH STATEMENT
  EXECUTE FUNCTION suppress_redundant_updates_trigger();
DROP TABLE attack_fake;
RESET ROLE;
SELECT ectosync.wait_for_worker() AS drained;
SELECT count(*) AS reloads_from_a_fake_trigger
  FROM ectosync._events_since(:before_fake) WHERE tbl = 'public.attack_pt';
SELECT ectosync.unwatch('attack_pt');
DROP TABLE attack_pt;
-- ... its DROP INDEX neither refreshes nor removes another owner's watch
-- that a migration left unresolved for a while ...
CREATE TABLE attack_p (id int PRIMARY KEY);
CREATE TABLE attack_c (id int PRIMARY KEY, attack_p_id int REFERENCES attack_p);
SELECT ectosync.watch('attack_p', '["attack_c"]') IS NOT NULL AS watched;
ALTER TABLE attack_c RENAME TO attack_c2;
SET ROLE attack_plain;
CREATE TEMP TABLE attack_y (a int);
CREATE INDEX attack_yi ON attack_y (a);
DROP INDEX attack_yi;
-- ... and its watch() of a table of its own, which refreshes every watch,
-- does not show it the other's spec (a list's constants) in a WARNING: that
-- goes to the server log alone, for a role that may not read attack_p
CREATE TABLE attack_plain.w (id int PRIMARY KEY);
SELECT ectosync.watch('attack_plain.w') IS NOT NULL AS watched;
SELECT ectosync.unwatch('attack_plain.w');
DROP TABLE attack_plain.w;
RESET ROLE;
SELECT count(*) AS watches_of_attack_p FROM ectosync.watches WHERE root = 'attack_p'::regclass;
ALTER TABLE attack_c2 RENAME TO attack_c;
SELECT ectosync.unwatch('attack_p');
DROP TABLE attack_c, attack_p;
-- ... and it cannot write into the database's event queue with a trigger
-- of its own calling ectosync.capture().
SET ROLE attack_plain;
CREATE TEMP TABLE attack_z (id int PRIMARY KEY);
CREATE TRIGGER attack_spam AFTER INSERT ON attack_z FOR EACH ROW
  EXECUTE FUNCTION ectosync.capture('1', '1:id');
RESET ROLE;
-- The owner of a watched table who renames its capture trigger (to drop
-- it later, which would fire no refresh) gets the trigger made again at
-- once, so that no trigger of its own can take the name: arguments of no
-- use there would have broken every role's DROP INDEX.  Its table stays
-- captured, and another role's DROP INDEX and watch() go on.
SET ROLE attack_plain;
CREATE TABLE attack_plain.own (id int PRIMARY KEY);
SELECT ectosync.watch('attack_plain.own') IS NOT NULL AS watched;
ALTER TRIGGER ectosync_capture ON attack_plain.own RENAME TO attack_kept;
CREATE FUNCTION attack_plain.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
\set VERBOSITY terse
CREATE TRIGGER ectosync_capture AFTER INSERT ON attack_plain.own FOR EACH ROW
  EXECUTE FUNCTION attack_plain.noop('x');
\set VERBOSITY default
DROP TRIGGER attack_kept ON attack_plain.own;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'attack_plain.own'::regclass ORDER BY 1;
SELECT ectosync.load('attack_plain.own') -> 'rows' AS captured_rows;
RESET ROLE;
CREATE TABLE attack_q (id int PRIMARY KEY, v int);
CREATE INDEX attack_qi ON attack_q (v);
DROP INDEX attack_qi;
SELECT ectosync.watch('attack_q') IS NOT NULL AS watched;
SELECT ectosync.unwatch('attack_q');
DROP TABLE attack_q;
SET ROLE attack_plain;
SELECT ectosync.unwatch('attack_plain.own');
DROP TABLE attack_plain.own;
DROP FUNCTION attack_plain.noop();
RESET ROLE;

-- ==== an owner's cast cannot change the worker for other tables ====
-- The worker reads each table as its owner with pinned settings; a cast
-- that SETs things in the worker's session is undone after its table's
-- read, so another owner's table is read as before.
CREATE TABLE attack_log (what text);
GRANT INSERT ON attack_log TO PUBLIC;
CREATE SCHEMA attack_w1 AUTHORIZATION attack_plain;
SET ROLE attack_plain;
CREATE TYPE attack_w1.mood AS ENUM ('ok');
CREATE FUNCTION attack_w1.mood_json(attack_w1.mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('work_mem', '64kB', false);
  PERFORM set_config('enable_indexscan', 'off', false);
  RETURN to_json($1::text);
END $$;
CREATE CAST (attack_w1.mood AS json) WITH FUNCTION attack_w1.mood_json(attack_w1.mood);
CREATE TABLE attack_w1.m (id int PRIMARY KEY, n int DEFAULT 0, mood attack_w1.mood DEFAULT 'ok');
INSERT INTO attack_w1.m VALUES (1);
SELECT ectosync.watch('attack_w1.m') IS NOT NULL AS watched;
RESET ROLE;
CREATE TYPE attack_probe AS ENUM ('p');
CREATE FUNCTION attack_probe_json(attack_probe) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.attack_log VALUES ('work_mem=' || current_setting('work_mem') ||
                                        ' enable_indexscan=' || current_setting('enable_indexscan'));
  RETURN to_json($1::text);
END $$;
CREATE CAST (attack_probe AS json) WITH FUNCTION attack_probe_json(attack_probe);
CREATE TABLE attack_w2 (id int PRIMARY KEY, v int DEFAULT 0, p attack_probe DEFAULT 'p');
INSERT INTO attack_w2 VALUES (1);
SELECT ectosync.watch('attack_w2') IS NOT NULL AS watched;
SELECT ectosync.load('attack_w1.m') IS NOT NULL AND ectosync.load('attack_w2') IS NOT NULL AS used;
TRUNCATE attack_log;
UPDATE attack_w1.m SET n = n + 1;
SELECT ectosync.wait_for_worker() AS drained;
UPDATE attack_w2 SET v = v + 1;
SELECT ectosync.wait_for_worker() AS drained;
SELECT DISTINCT what AS worker_settings_for_attack_w2 FROM attack_log;
SELECT ectosync.unwatch('attack_w1.m');
SELECT ectosync.unwatch('attack_w2');
DROP TABLE attack_w2, attack_log;
DROP CAST (attack_probe AS json);
DROP FUNCTION attack_probe_json(attack_probe);
DROP TYPE attack_probe;
DROP SCHEMA attack_w1 CASCADE;

-- ==== an owner's cast that sleeps cannot hold the worker ====
-- A read of a table's changed rows times out alone (5 s), its rows are
-- left to the sessions that need them, and the other tables' changes go
-- on: the table after it is read, and the worker catches up.
CREATE SCHEMA attack_s AUTHORIZATION attack_plain;
SET ROLE attack_plain;
CREATE TYPE attack_s.slow AS ENUM ('zz');
CREATE FUNCTION attack_s.slow_json(attack_s.slow) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(3600);
  RETURN to_json($1::text);
END $$;
CREATE CAST (attack_s.slow AS json) WITH FUNCTION attack_s.slow_json(attack_s.slow);
CREATE TABLE attack_s.t (id int PRIMARY KEY, s attack_s.slow);
SELECT ectosync.watch('attack_s.t') IS NOT NULL AS watched;
SELECT ectosync.load('attack_s.t') IS NOT NULL AS used;  -- (no rows: nothing cast)
RESET ROLE;
CREATE TABLE attack_quick (id int PRIMARY KEY, v int);
INSERT INTO attack_quick VALUES (1, 0);
SELECT ectosync.watch('attack_quick') IS NOT NULL AS watched;
CREATE TEMP TABLE quick AS SELECT ectosync.load('attack_quick') AS v;
INSERT INTO attack_s.t VALUES (1, 'zz');
UPDATE attack_quick SET v = 1;
SELECT ectosync.wait_for_worker(60000) AS drained;
SELECT (regress.apply(v) - 'seq') = (ectosync.load('attack_quick') - 'seq') AS other_table_synced
  FROM quick;
SELECT ectosync.unwatch('attack_s.t');
SELECT ectosync.unwatch('attack_quick');
DROP TABLE attack_quick;
DROP SCHEMA attack_s CASCADE;

-- ==== a cast that swallows the worker's timeout ====
-- attack_plain's tables have a json cast that catches the worker's cancel
-- and sleeps again: a read outlives its timeout (5 s).  5 s past it the
-- worker ends itself (FATAL, which no handler catches); the workers that
-- follow leave that table's rows to the sessions for a minute (two such
-- tables in one batch end two workers, not every next one), and the
-- other tables' changes flow again.
SET ROLE attack_plain;
CREATE TYPE attack_plain.mood AS ENUM ('slow');
CREATE FUNCTION attack_plain.mood_json(attack_plain.mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  LOOP
    BEGIN
      PERFORM pg_sleep(3600);
    EXCEPTION WHEN query_canceled THEN NULL;
    END;
  END LOOP;
END $$;
CREATE CAST (attack_plain.mood AS json) WITH FUNCTION attack_plain.mood_json(attack_plain.mood);
CREATE TABLE attack_plain.stall (id int PRIMARY KEY, m attack_plain.mood);
CREATE TABLE attack_plain.stall2 (id int PRIMARY KEY, m attack_plain.mood);
SELECT ectosync.watch('attack_plain.stall') IS NOT NULL AS watched;
SELECT ectosync.watch('attack_plain.stall2') IS NOT NULL AS watched;
-- (a use: the worker reads their rows ahead)
SELECT ectosync.load('attack_plain.stall') -> 'rows' AS rows,
       ectosync.load('attack_plain.stall2') -> 'rows' AS rows;
RESET ROLE;
CREATE TABLE attack_victim (id int PRIMARY KEY, v text);
SELECT ectosync.watch('attack_victim') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker() AS drained;
SELECT worker_pid AS stalled_pid FROM ectosync.stats \gset
SET ROLE attack_plain;
BEGIN;
INSERT INTO attack_plain.stall VALUES (1, 'slow');
INSERT INTO attack_plain.stall2 VALUES (1, 'slow');
COMMIT;
RESET ROLE;
INSERT INTO attack_victim VALUES (1, 'after the stall');
SELECT ectosync.wait_for_worker(40000) AS drained;
SELECT worker_pid <> :stalled_pid AS another_worker FROM ectosync.stats;
SELECT ectosync.load('attack_victim') -> 'rows' AS victim_rows;
SELECT ectosync.unwatch('attack_victim');
DROP TABLE attack_victim;
SET ROLE attack_plain;
SELECT ectosync.unwatch('attack_plain.stall'), ectosync.unwatch('attack_plain.stall2');
DROP TABLE attack_plain.stall, attack_plain.stall2;
DROP CAST (attack_plain.mood AS json);
DROP FUNCTION attack_plain.mood_json(attack_plain.mood);
DROP TYPE attack_plain.mood;
RESET ROLE;

-- ==== clean up ====
SELECT ectosync.unwatch('attack_a');
SELECT ectosync.unwatch('attack_plain.b');
DROP TABLE attack_a;
DROP SCHEMA attack_plain CASCADE;
DROP OWNED BY attack_plain, attack_holder;
DROP ROLE attack_plain, attack_holder;
SELECT count(*) AS watches_left FROM ectosync.watches;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
