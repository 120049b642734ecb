-- Partitioned tables: watch() of a partitioned table captures the rows of
-- every partition, those created or attached later too, and reports them
-- under the partitioned table: values, events, cached rows and channels
-- name the partitioned table, never a partition.  Foreign keys to and from
-- a partitioned table make associations.
CREATE SCHEMA parts_test;
SET search_path = parts_test, public;
SET client_min_messages = warning;

-- A time-partitioned table (by day, as yyyymmdd): its primary key must
-- include the partition key.
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE events (id int, day int, user_id int REFERENCES users, what text,
                     PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
-- Notes reference the partitioned table itself.
CREATE TABLE event_notes (id int PRIMARY KEY, event_id int, event_day int, body text,
                          FOREIGN KEY (event_id, event_day) REFERENCES events);
-- January: made as a partition.
CREATE TABLE events_01 PARTITION OF events FOR VALUES FROM (20240101) TO (20240201);
-- February: made on its own, with a column dropped and the columns in
-- another order (its column numbers are not its parent's), then attached.
CREATE TABLE events_02 (junk int, what text, user_id int, day int NOT NULL, id int NOT NULL);
ALTER TABLE events_02 DROP COLUMN junk;
ALTER TABLE events ATTACH PARTITION events_02 FOR VALUES FROM (20240201) TO (20240301);
SELECT c.relname, a.attname, a.attnum FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relname IN ('events', 'events_02') AND a.attname IN ('id', 'day', 'user_id')
 ORDER BY 1, 3;

INSERT INTO users VALUES (1, 'ada'), (2, 'bob');
INSERT INTO events VALUES (1, 20240105, 1, 'login'), (2, 20240210, 1, 'logout'),
                          (3, 20240215, 2, 'login');

-- Associations go through the partitioned table, never through its
-- partitions (whose foreign keys are clones of the parent's).
SELECT name, kind, target FROM ectosync.associations('users');
SELECT name, kind, target, owner_columns, target_columns FROM ectosync.associations('events');
SELECT name, kind, target FROM ectosync.associations('event_notes');

-- A partition is not a table of its own for ecto_sync.
SELECT ectosync.watch('events_01');

-- Two shapes: users with their events (the partitioned table as a
-- has_many target), and events with their user and notes (as the root).
SELECT ectosync.watch('users', '["events"]');
SELECT ectosync.watch('events', '["user", "event_notes"]');
SELECT ectosync.wait_for_worker();

-- Each shape is held (hold/changes, patched by the client) and kept
-- stateless (load, then sync of every event; ZE001: load again).
CREATE TEMP TABLE client (name text PRIMARY KEY, tbl regclass, assocs jsonb,
                          held jsonb, version bigint, stateless jsonb);
INSERT INTO client
  SELECT 'users', 'users', '["events"]'::jsonb,
         ectosync.hold('users', 'users', '["events"]', listen => false), 0,
         ectosync.load('users', '["events"]')
  UNION ALL
  SELECT 'events', 'events', '["user", "event_notes"]',
         ectosync.hold('events', 'events', '["user", "event_notes"]', listen => false), 0,
         ectosync.load('events', '["user", "event_notes"]');

-- After each step: both copies of both values equal a fresh load; whether
-- the held value was sent whole ("reloaded") and the stateless one had to
-- be loaded again (ZE001).
CREATE FUNCTION pg_temp.check()
  RETURNS TABLE (value text, held_reloaded boolean, held_equal boolean,
                 stateless_reloaded boolean, stateless_equal boolean)
LANGUAGE plpgsql AS $$
DECLARE
  c record;
  ch jsonb;
  s jsonb;
  again boolean;
BEGIN
  PERFORM ectosync.wait_for_worker();
  FOR c IN SELECT * FROM client ORDER BY client.name LOOP
    ch := ectosync.changes(c.name, c.version);
    again := false;
    BEGIN
      s := regress.apply(c.stateless);
    EXCEPTION WHEN SQLSTATE 'ZE001' THEN
      s := ectosync.load(c.tbl, c.assocs);
      again := true;
    END;
    UPDATE client SET held = regress.patch(client.held, ch -> 'patch'),
                      version = (ch ->> 'version')::bigint, stateless = s
     WHERE client.name = c.name;
    RETURN QUERY
      SELECT c.name, ch ? 'reloaded',
             (k.held - 'seq') = (ectosync.load(c.tbl, c.assocs) - 'seq'), again,
             (k.stateless - 'seq') = (ectosync.load(c.tbl, c.assocs) - 'seq')
        FROM client k WHERE k.name = c.name;
  END LOOP;
END $$;

-- The held users value, compactly: each user's events as id@day.
CREATE FUNCTION pg_temp.show() RETURNS TABLE (username text, events text) LANGUAGE sql AS $$
  SELECT u ->> 'name',
         (SELECT string_agg((e ->> 'id') || '@' || (e ->> 'day'), ', ')
            FROM jsonb_array_elements(u -> 'events') e)
    FROM client, jsonb_array_elements(held -> 'rows') u WHERE client.name = 'users'
$$;
SELECT * FROM pg_temp.show();
-- The events value names the partitioned table.
SELECT stateless ->> 'table' AS "table", (stateless ->> 'relid')::oid = 'events'::regclass AS relid
  FROM client WHERE name = 'events';

-- Events of a partition's rows name the partitioned table (the channel is
-- the partitioned table's too).
SELECT last_seq AS before FROM ectosync.stats \gset
INSERT INTO events VALUES (4, 20240120, 2, 'login'), (5, 20240220, 2, 'upload');
SELECT payload::jsonb ->> 'table' AS "table", payload::jsonb ->> 'op' AS op
  FROM ectosync._events_since(:before);
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();

-- changes() refuses a statement that changes a partition of the value's
-- table (its rows would be read uncommitted), and so does a transaction
-- that did.
WITH moved AS (UPDATE events SET what = 'never' WHERE id = 4 RETURNING id)
SELECT ectosync.changes('events') FROM moved;
BEGIN;
UPDATE events SET what = 'never' WHERE id = 5;
SELECT ectosync.changes('events');
ROLLBACK;

-- Updates in both partitions (the February one reads its key columns by
-- its own column numbers): a column, and the user (moves between users).
UPDATE events SET what = 'logged in' WHERE id = 1;
UPDATE events SET user_id = 2 WHERE id = 2;
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();

-- Notes on events of both partitions (a foreign key to the partitioned table).
INSERT INTO event_notes VALUES (1, 1, 20240105, 'first'), (2, 3, 20240215, 'second');
SELECT * FROM pg_temp.check();

-- An update of the partition key moves the row to another partition: a
-- delete in one, an insert in the other, one key gone and another new.
DELETE FROM event_notes WHERE id = 1;
UPDATE events SET day = 20240201 WHERE id = 1;
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();

-- Deletes.
DELETE FROM events WHERE id = 4;
SELECT * FROM pg_temp.check();

-- A partition made after watch(): PostgreSQL clones the capture trigger
-- to it, and the event trigger gives it its TRUNCATE trigger.
CREATE TABLE events_03 PARTITION OF events FOR VALUES FROM (20240301) TO (20240401);
INSERT INTO events VALUES (6, 20240301, 1, 'march');
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();

-- A table attached after watch(), with its rows already in it and its
-- columns in another order: its rows appear without row triggers, so
-- values holding events reload (once the ATTACH commits); later writes to
-- it are captured like any partition's.
CREATE TABLE events_04 (what text, day int NOT NULL, id int NOT NULL, user_id int);
INSERT INTO events_04 VALUES ('april', 20240401, 7, 1);
ALTER TABLE events ATTACH PARTITION events_04 FOR VALUES FROM (20240401) TO (20240501);
SELECT * FROM pg_temp.check();
UPDATE events SET user_id = 2, what = 'april, edited' WHERE id = 7;
INSERT INTO events VALUES (8, 20240402, 1, 'april again');
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();
SELECT tgrelid::regclass, tgname, tgparentid <> 0 AS cloned FROM pg_trigger
 WHERE tgname LIKE 'ectosync%' AND tgrelid::regclass::text LIKE 'events%' ORDER BY 1, 2;

INSERT INTO events VALUES (11, 20240111, 2, 'january');
SELECT * FROM pg_temp.check();
-- TRUNCATE of one partition (statement triggers are not cloned: the
-- partition's own TRUNCATE trigger reports it under events).  CASCADE
-- empties event_notes too, which only the events value holds.
TRUNCATE events_01 CASCADE;
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();
-- ... of a partition made after watch().
TRUNCATE events_03 CASCADE;
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();

-- A partition's capture trigger disabled, as a restore's ALTER TABLE ...
-- DISABLE TRIGGER ALL leaves it: it fires again at once, always, and the
-- values reload (it may have missed rows); so does one enabled for the
-- origin only (ENABLE TRIGGER ALL after the restore).
ALTER TABLE events_02 DISABLE TRIGGER ALL;
SELECT * FROM pg_temp.check();
INSERT INTO events VALUES (12, 20240212, 1, 'february, captured');
SELECT * FROM pg_temp.check();
ALTER TABLE events_02 ENABLE TRIGGER ALL;
INSERT INTO events VALUES (13, 20240213, 1, 'february, captured too');
SELECT * FROM pg_temp.check();
SELECT t.tgname, t.tgenabled FROM pg_catalog.pg_trigger t
 WHERE t.tgrelid = 'events_02'::regclass AND t.tgname LIKE 'ectosync%' ORDER BY t.tgname;
-- A partition's own TRUNCATE trigger dropped by hand is installed again in
-- the same statement: a TRUNCATE of the partition then still reloads.
DROP TRIGGER ectosync_truncate ON events_01;
SELECT count(*) AS truncate_trigger FROM pg_catalog.pg_trigger t
 WHERE t.tgrelid = 'events_01'::regclass AND t.tgname = 'ectosync_truncate';
TRUNCATE events_01 CASCADE;
SELECT * FROM pg_temp.check();
-- Every partition's TRUNCATE trigger fires ALWAYS, as the root's triggers
-- do: a subscriber's apply worker truncates a partition under
-- session_replication_role = replica, and the values reload all the same.
SELECT t.tgrelid::regclass AS partition, t.tgenabled FROM pg_catalog.pg_trigger t
 WHERE t.tgrelid IN (SELECT relid FROM pg_partition_tree('events') WHERE isleaf)
   AND t.tgname = 'ectosync_truncate' ORDER BY 1;
INSERT INTO events VALUES (14, 20240314, 1, 'march, replicated');
SELECT * FROM pg_temp.check();
SET session_replication_role = replica;
TRUNCATE events_03 CASCADE;
RESET session_replication_role;
SELECT * FROM pg_temp.check();

-- DETACH and DROP of a partition take its rows away without row triggers:
-- values holding events reload.
ALTER TABLE events DETACH PARTITION events_04;
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();
-- The detached table is no partition any more: its writes are not events'.
INSERT INTO events_04 VALUES ('may', 20240501, 9, 1);
SELECT * FROM pg_temp.check();
-- The transaction that attaches a partition may not hold or read a value
-- of its table: the rows it would read come from the partition, and the
-- marker that reloads the values follows the commit.
\set VERBOSITY terse
BEGIN;
ALTER TABLE events ATTACH PARTITION events_04 FOR VALUES FROM (20240401) TO (20240601);
SELECT ectosync.hold('attaching', 'events', listen => false);
ROLLBACK;
\set VERBOSITY default
SELECT * FROM pg_temp.check();

-- DROP of a partition (one that no foreign key references: PostgreSQL
-- refuses to drop a partition of events while event_notes references it).
CREATE TABLE pings (id int, day int, PRIMARY KEY (id, day)) PARTITION BY LIST (day);
CREATE TABLE pings_1 PARTITION OF pings FOR VALUES IN (1);
CREATE TABLE pings_2 PARTITION OF pings FOR VALUES IN (2);
INSERT INTO pings VALUES (1, 1), (2, 2);
SELECT ectosync.watch('pings');
INSERT INTO client SELECT 'pings', 'pings', '[]', ectosync.hold('pings', 'pings', listen => false),
                          0, ectosync.load('pings');
INSERT INTO pings VALUES (3, 1);
SELECT * FROM pg_temp.check();
-- At sql_drop the dropped partition's parent is no longer in the catalog:
-- every watched partitioned table reloads, events too.
DROP TABLE pings_1;
SELECT * FROM pg_temp.check();
SELECT held -> 'rows' AS pings FROM client WHERE name = 'pings';
SELECT ectosync.release('pings'), ectosync.unwatch('pings');
DELETE FROM client WHERE name = 'pings';

-- TRUNCATE of the partitioned table.
INSERT INTO events VALUES (10, 20240110, 1, 'again');
SELECT * FROM pg_temp.check();
TRUNCATE events CASCADE;
SELECT * FROM pg_temp.check();
SELECT * FROM pg_temp.show();

-- unwatch() removes the triggers from the partitioned table and its
-- partitions (a detached table keeps its TRUNCATE trigger, which reports
-- the table itself: no value holds it).
SELECT ectosync.release('users'), ectosync.release('events');
SELECT ectosync.unwatch('users');
SELECT ectosync.unwatch('events');
SELECT tgrelid::regclass, tgname FROM pg_trigger
 WHERE tgname LIKE 'ectosync%' AND tgrelid::regclass::text LIKE 'events%' ORDER BY 1, 2;

RESET client_min_messages;
DROP SCHEMA parts_test CASCADE;
