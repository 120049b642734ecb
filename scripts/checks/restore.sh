#!/usr/bin/env bash
# restore.sh: run by scripts/test.sh against a throwaway cluster.  A
# database with watches over tables whose keys follow dropped columns
# (their attnums differ in a restored copy) is dumped and restored twice:
# plain (pg_dump | psql), and schema first, then data with
# --disable-triggers (pg_restore).  In each copy, with no manual step,
# writes succeed and a value synced through them equals a fresh load.
# Exits non-zero on any failure.
set -euo pipefail
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

psql_q -c "DROP DATABASE IF EXISTS restore_src" -c "CREATE DATABASE restore_src"
psql_q -d restore_src <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION ecto_sync;
CREATE TABLE authors (gone int, id int PRIMARY KEY, name text NOT NULL);
ALTER TABLE authors DROP COLUMN gone;
CREATE TABLE books (dropped text, id int PRIMARY KEY, author_id int REFERENCES authors,
                    title text NOT NULL);
ALTER TABLE books DROP COLUMN dropped;
INSERT INTO authors VALUES (1, 'Ann'), (2, 'Bo');
INSERT INTO books VALUES (10, 1, 'Alpha'), (11, 2, 'Beta');
SELECT ectosync.watch('authors', '["books"]') IS NOT NULL;
SQL
pg_dump -d restore_src -f "$dir/plain.sql"
pg_dump -d restore_src -Fc -f "$dir/custom.dump"

for copy in plain split; do
  db=restore_$copy
  psql_q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  if [[ $copy == plain ]]; then
    psql_q -d "$db" -f "$dir/plain.sql" >/dev/null
  else
    pg_restore -d "$db" --schema-only "$dir/custom.dump"
    pg_restore -d "$db" --data-only --disable-triggers "$dir/custom.dump"
  fi
  psql_q -d "$db" <<'SQL'
SET client_min_messages = warning;
CREATE TEMP TABLE v AS SELECT ectosync.load('authors', '["books"]') AS val;
INSERT INTO books VALUES (12, 1, 'Gamma');
UPDATE books SET title = 'Beta 2', author_id = 1 WHERE id = 11;
DELETE FROM books WHERE id = 10;
UPDATE authors SET name = 'Ann 2' WHERE id = 1;
SELECT ectosync.wait_for_worker() IS NOT NULL;
DO $$
DECLARE
  val jsonb := (SELECT v.val FROM v);
  p text;
BEGIN
  FOR p IN SELECT payload FROM ectosync._events_since((val ->> 'seq')::bigint) LOOP
    val := ectosync.sync(val, p);
  END LOOP;
  IF (val - 'seq') IS DISTINCT FROM (ectosync.load('authors', '["books"]') - 'seq') THEN
    RAISE EXCEPTION 'restored copy: the synced value differs from a fresh load: % vs %',
      val, ectosync.load('authors', '["books"]');
  END IF;
  IF (SELECT count(*) FROM ectosync.watches) <> 1 THEN
    RAISE EXCEPTION 'restored copy: the watch is gone';
  END IF;
END $$;
SQL
  echo "ok: $copy restore: writes captured, the synced value equals a fresh load"
done
