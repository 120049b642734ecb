-- DROP EXTENSION stops this database's worker (it checks every second) and
-- frees its queue slot; CREATE EXTENSION starts a new one, without a
-- server restart.
CREATE FUNCTION pg_temp.workers() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM pg_stat_activity
   WHERE backend_type = 'ecto_sync worker' AND datname = current_database() $$;
-- pg_stat_activity is read once per transaction unless the snapshot of it
-- is cleared: a loop inside one function call must clear it.
CREATE FUNCTION pg_temp.wait_for_workers(n int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN pg_temp.workers() = n;
    PERFORM pg_sleep(0.05);
    PERFORM pg_stat_clear_snapshot();
  END LOOP;
  RETURN pg_temp.workers();
END $$;

SELECT pg_temp.wait_for_workers(1) AS workers_before;
DROP EXTENSION ecto_sync CASCADE;
SELECT pg_temp.wait_for_workers(0) AS workers_after_drop;

CREATE EXTENSION ecto_sync;
SELECT pg_temp.wait_for_workers(1) AS workers_after_create;

-- A database that installed 0.1.0 updates to the current version in place:
-- the held values' functions appear, and stats() gains rows_not_loaded.
DROP EXTENSION ecto_sync;
CREATE EXTENSION ecto_sync VERSION '0.1.0';
SELECT count(*) AS hold_functions FROM pg_proc WHERE proname = 'hold';
-- A watch whose capture trigger is as 0.1.0 made it: columns by attnum,
-- firing in session_replication_role = origin only.  It still captures,
-- and the update rebuilds it: columns by attnum and name, firing always.
CREATE TABLE legacy (id int PRIMARY KEY, v text);
SELECT ectosync.watch('legacy') IS NOT NULL AS watched;
DROP TRIGGER ectosync_capture ON legacy;
CREATE TRIGGER ectosync_capture AFTER INSERT OR UPDATE OR DELETE ON legacy
  FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '1');
INSERT INTO legacy VALUES (1, 'a');
SELECT ectosync.wait_for_worker() AS caught_up;
SELECT op, pk FROM ectosync._events_since(0) WHERE tbl = 'public.legacy';
ALTER EXTENSION ecto_sync UPDATE;
SELECT tgenabled, substring(pg_get_triggerdef(oid) FROM 'capture\((.*)\)$') AS args
  FROM pg_trigger WHERE tgrelid = 'legacy'::regclass AND tgname = 'ectosync_capture';
SELECT ectosync.unwatch('legacy');
DROP TABLE legacy;
SELECT extversion FROM pg_extension WHERE extname = 'ecto_sync';
SELECT count(*) AS hold_functions FROM pg_proc WHERE proname = 'hold';
SELECT rows_not_loaded >= 0 AS stats_has_rows_not_loaded FROM ectosync.stats;
