-- ecto_sync is preloaded (shared_preload_libraries) by the test cluster.
-- CREATE EXTENSION starts this database's worker once it commits.
CREATE EXTENSION ecto_sync;
SELECT ectosync.version();

-- Wait (at most 10 s) for the launcher to start the worker.
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN (SELECT worker_pid FROM ectosync.stats) > 0;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT worker_pid > 0 AS worker_running FROM ectosync.stats;
SELECT count(*) AS workers_for_this_database
  FROM pg_stat_activity
 WHERE backend_type = 'ecto_sync worker' AND datname = current_database();

-- Settings, with their defaults.
SELECT name, setting, unit, context
  FROM pg_settings WHERE name LIKE 'ectosync.%' ORDER BY name;

-- Every function of ecto_sync in SQL or PL/pgSQL pins its search_path to
-- pg_catalog, pg_temp: none resolves an operator, function or type through
-- a caller's path, where another role may have put one (C functions pin it
-- around the SQL they run: PinnedSettings).
SELECT p.oid::regprocedure AS unpinned
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'ectosync'::regnamespace AND l.lanname <> 'c'
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
 ORDER BY 1;
