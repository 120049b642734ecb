-- Each database has its own queue, sequence and worker: events of one
-- database never reach another's worker or clients.
CREATE EXTENSION dblink;
CREATE DATABASE ectosync_other;
SELECT dblink_connect('other', format('dbname=ectosync_other host=%s port=%s',
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')));

-- The same table and trigger in both databases.
CREATE TABLE shared_name (id int PRIMARY KEY, v text);
CREATE TRIGGER ectosync_capture AFTER INSERT OR UPDATE OR DELETE ON shared_name
  FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '1');
SELECT dblink_exec('other', $$
  CREATE EXTENSION ecto_sync;
  CREATE TABLE shared_name (id int PRIMARY KEY, v text);
  CREATE TRIGGER ectosync_capture AFTER INSERT OR UPDATE OR DELETE ON shared_name
    FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '1') $$);

CREATE TEMP TABLE mark AS SELECT last_seq AS seq FROM ectosync.stats;
SELECT dblink_exec('other', 'CREATE TABLE mark AS SELECT last_seq AS seq FROM ectosync.stats');

INSERT INTO shared_name VALUES (1, 'here');
SELECT dblink_exec('other', $$INSERT INTO shared_name VALUES (2, 'there'), (3, 'there')$$);
UPDATE shared_name SET v = 'still here';

-- Each database's worker sees only its own events.
SELECT e.seq - m.seq AS n, e.op, e.pk
  FROM mark m, ectosync._events_since(m.seq) e ORDER BY e.seq;
SELECT * FROM dblink('other', $$
  SELECT e.seq - m.seq, e.op, e.pk FROM mark m, ectosync._events_since(m.seq) e ORDER BY e.seq $$)
  AS t(n bigint, op text, pk text);

-- Two workers, one per database.
SELECT count(DISTINCT datname) AS databases_with_a_worker
  FROM pg_stat_activity
 WHERE backend_type = 'ecto_sync worker' AND datname IN (current_database(), 'ectosync_other');

-- An interest entry freed in one database and taken in another: the
-- first database's worker, which had indexed it, leaves it to the other's,
-- which wakes the new holder.
CREATE TABLE xt (id int PRIMARY KEY, owner int NOT NULL);
SELECT ectosync.watch('xt') IS NOT NULL AS watched;
SELECT ectosync.hold('a', 'xt', '[]', '{"owner": 1}', listen => false) IS NOT NULL AS held;
INSERT INTO xt VALUES (1, 1);
SELECT ectosync.wait_for_worker();
SELECT ectosync.release('a');
-- (the watch commits before the hold: one that this transaction made
-- would not count, sql_tests/13_captured.sql)
SELECT * FROM dblink('other', $$
  CREATE TABLE yt (id int PRIMARY KEY, owner int NOT NULL);
  SELECT ectosync.watch('yt') IS NOT NULL $$) AS t(watched boolean);
SELECT * FROM dblink('other', $$
  SELECT ectosync.hold('b', 'yt', '[]', '{"owner": 1}', listen => false) IS NOT NULL $$)
  AS t(held boolean);
INSERT INTO xt VALUES (2, 1);
SELECT ectosync.wait_for_worker();
SELECT dblink_exec('other', 'INSERT INTO yt VALUES (2, 1)');
SELECT * FROM dblink('other', 'SELECT ectosync.wait_for_worker()') AS t(caught_up boolean);
SELECT * FROM dblink('other', $$SELECT notifications > 0 FROM ectosync.held() WHERE name = 'b'$$)
  AS t(woken boolean);
SELECT ectosync.unwatch('xt');
DROP TABLE xt;

-- A database that stops allowing connections keeps its slot: its sessions
-- and its worker go on, and so do their events.  (The launcher looks at
-- the databases every 5 s.)
ALTER DATABASE ectosync_other ALLOW_CONNECTIONS false;
SELECT pg_sleep(6);
SELECT dblink_exec('other', 'INSERT INTO yt VALUES (3, 1)');
SELECT dblink_exec('other', $$SET statement_timeout = '20s'$$);
SELECT * FROM dblink('other', $$SELECT ectosync.wait_for_worker()$$) AS t(caught_up boolean);
SELECT * FROM dblink('other', $$
  SELECT jsonb_path_query_array(ectosync.changes('b'), '$.patch[*].value.id') $$)
  AS t(rows_added jsonb);
SELECT * FROM dblink('other', $$
  SELECT count(*) FROM ectosync._events_since(0) WHERE tbl = 'public.yt' AND pk = '3' $$)
  AS t(logged bigint);
ALTER DATABASE ectosync_other ALLOW_CONNECTIONS true;

SELECT dblink_disconnect('other');
DROP DATABASE ectosync_other WITH (FORCE);
DROP TABLE shared_name;
DROP EXTENSION dblink;
