-- Changes made while a table is not captured (unwatched, or the extension
-- dropped) never reach the row cache's entries: when watch() starts
-- capturing a table again, rows cached before are stale and must not be
-- served (a new load is fresh; a later sync that reads a cached row by key,
-- here the new author of a post, must read it fresh too).
SET client_min_messages = warning;
CREATE TABLE writers (id int PRIMARY KEY, name text);
CREATE TABLE notes (id int PRIMARY KEY, writer_id int REFERENCES writers, body text);
INSERT INTO writers VALUES (1, 'Ann'), (2, 'Bob');
INSERT INTO notes VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 2, 'c');
SELECT ectosync.watch('notes', '["writer"]') IS NOT NULL AS watched;
CREATE TEMP TABLE v (v jsonb);
INSERT INTO v SELECT ectosync.load('notes', '["writer"]');
-- the worker caches writer 1 as 'Ann v1'
UPDATE writers SET name = 'Ann v1' WHERE id = 1;
SELECT (regress.apply(v) - 'seq') = (ectosync.load('notes', '["writer"]') - 'seq') AS synced FROM v;

-- capture stops, writer 1 changes unseen, capture starts again
SELECT ectosync.unwatch('notes');
UPDATE writers SET name = 'Ann changed while unwatched' WHERE id = 1;
SELECT ectosync.watch('notes', '["writer"]') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker(5000) AS drained;
UPDATE v SET v = ectosync.load('notes', '["writer"]');
UPDATE notes SET writer_id = 1 WHERE id = 2;  -- sync reads writer 1 by key
SELECT (regress.apply(v) - 'seq') = (ectosync.load('notes', '["writer"]') - 'seq') AS synced,
       jsonb_path_query_array(regress.apply(v), '$.rows[*].writer.name') AS names
FROM v;

-- the same across DROP EXTENSION / CREATE EXTENSION
UPDATE writers SET name = 'Bob v1' WHERE id = 2;
UPDATE v SET v = regress.apply(v);
DROP EXTENSION ecto_sync CASCADE;
UPDATE writers SET name = 'Bob changed while dropped' WHERE id = 2;
CREATE EXTENSION ecto_sync;
SELECT ectosync.watch('notes', '["writer"]') IS NOT NULL AS watched;
UPDATE v SET v = ectosync.load('notes', '["writer"]');
UPDATE notes SET writer_id = 2 WHERE id = 1;
SELECT (regress.apply(v) - 'seq') = (ectosync.load('notes', '["writer"]') - 'seq') AS synced,
       jsonb_path_query_array(regress.apply(v), '$.rows[*].writer.name') AS names
FROM v;

SELECT ectosync.unwatch('notes');
DROP TABLE notes, writers;
