-- A value belongs to the database that loaded it.  Seqs count per
-- database, and databases made from one template have the same tables
-- under the same oids: a value of one, synced in the other, must not pass
-- for the other's at its seq.  Each database has an epoch of its own, and
-- sync() there asks for the value to be loaded again (ZE001).
SET client_min_messages = warning;
\set VERBOSITY default
SELECT current_database() AS regress_db \gset
CREATE DATABASE ectosync_tmpl;
\c ectosync_tmpl
SET client_min_messages = warning;
CREATE EXTENSION ecto_sync;
CREATE TABLE posts (id int PRIMARY KEY, title text);
INSERT INTO posts VALUES (1, 'one'), (2, 'two');
SELECT ectosync.watch('posts') IS NOT NULL AS watched;
\c :regress_db
-- (a template must have no sessions: its worker goes, and no other starts)
ALTER DATABASE ectosync_tmpl ALLOW_CONNECTIONS false;
SELECT count(pg_terminate_backend(pid)) >= 0 AS terminated
FROM pg_stat_activity WHERE datname = 'ectosync_tmpl';
DO $$
BEGIN
  FOR i IN 1 .. 1000 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE datname = 'ectosync_tmpl');
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
CREATE DATABASE ectosync_a TEMPLATE ectosync_tmpl;
CREATE DATABASE ectosync_b TEMPLATE ectosync_tmpl;

-- The same table, under the same oid, in both
\c ectosync_a
SET client_min_messages = warning;
INSERT INTO posts VALUES (3, 'three in a');
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT ectosync.load('posts') AS value_a \gset
SELECT (SELECT epoch FROM ectosync.stats()) AS epoch_a, 'posts'::regclass::oid AS relid_a \gset
\c ectosync_b
SET client_min_messages = warning;
UPDATE posts SET title = 'one in b' WHERE id = 1;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT 'posts'::regclass::oid = :relid_a AS same_oid,
       epoch <> :'epoch_a' AS own_epoch
FROM ectosync.stats();

-- a's value, synced in b with b's latest event: reload (before, a's rows
-- came back as b's value, or with b's changes applied to them)
CREATE FUNCTION pg_temp.try_sync(val jsonb, e text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN ectosync.sync(val, e)::text;
EXCEPTION WHEN OTHERS THEN
  DECLARE detail text;
  BEGIN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || ' / ' ||
           regexp_replace(coalesce(detail, ''), '[0-9a-f]{16}(:[0-9]+)?', '<id>', 'g');
  END;
END $$;
SELECT pg_temp.try_sync(:'value_a', format('%s:%s', epoch, last_seq)) AS synced_in_b
FROM ectosync.stats();
-- and an event of a, in b, is not b's: b's value is unchanged by it,
-- though b has an event of that seq; b's own event id applies it
SELECT ectosync.load('posts') AS value_b \gset
UPDATE posts SET title = 'two in b' WHERE id = 2;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT ectosync.sync(:'value_b', format('%s:%s', :'epoch_a', last_seq)) = :'value_b' AS unchanged,
       ectosync.sync(:'value_b', format('%s:%s', epoch, last_seq)) -> 'rows' AS synced
FROM ectosync.stats();

\c :regress_db
DROP DATABASE ectosync_a WITH (FORCE);
DROP DATABASE ectosync_b WITH (FORCE);
DROP DATABASE ectosync_tmpl WITH (FORCE);
