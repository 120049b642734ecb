-- A value never depends on who rendered a row: load(), the worker and
-- cache misses render every row under the same fixed settings (TimeZone
-- UTC, DateStyle ISO, IntervalStyle postgres, extra_float_digits 1,
-- bytea_output hex, lc_monetary C, timezone_abbreviations Default),
-- whatever the client's session says.
-- A session with other settings holds a value; a row changes; the patch
-- brings it as load() renders it in that session, and as another session
-- with yet other settings loads it.
CREATE TABLE settings_rows (id int PRIMARY KEY, at timestamptz, d date, span interval,
                            f float8, b bytea, m money, note text);
INSERT INTO settings_rows VALUES
  (1, '2026-06-01 12:00:00+00', '2026-06-01', '1 day 2 hours', 0.1, '\x00ff', 12.5, 'a'),
  (2, '2026-12-01 08:30:00+00', '2026-12-01', '-3 months', 1e-7, '\xdeadbeef', -3, 'b');
SELECT ectosync.watch('settings_rows') IS NOT NULL AS watched;

SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'iso_8601';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
-- The rows as every session gets them: times in UTC, ISO dates and
-- intervals, shortest exact floats, hex bytea.
SELECT jsonb_pretty(ectosync.hold('rows', 'settings_rows', listen => false) -> 'rows') AS rows;

-- Another session's change, read by the worker under its own settings:
-- the patch carries the row as load() here renders it.
UPDATE settings_rows SET note = 'a2' WHERE id = 1;
SELECT ectosync.wait_for_worker();
CREATE TEMP TABLE copy AS SELECT ectosync.load('settings_rows') AS value;
SELECT c -> 'patch' AS patch FROM ectosync.changes('rows', 0) c;
SELECT (regress.patch(ectosync.load('settings_rows'), '[]') - 'seq') = (value - 'seq')
       AS load_is_stable FROM copy;

-- sync() of that event from a value loaded under other settings again.
RESET ALL;
SET TimeZone = 'Asia/Kolkata';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 3;
SELECT (ectosync.load('settings_rows') - 'seq') = (value - 'seq') AS same_in_every_session
  FROM copy;
UPDATE settings_rows SET at = at + interval '1 hour' WHERE id = 2;
SELECT ectosync.wait_for_worker();
SELECT (regress.apply(value) - 'seq') = (ectosync.load('settings_rows') - 'seq')
       AS synced_equals_a_fresh_load,
       regress.apply(value) #>> '{rows,1,at}' AS synced_at
  FROM copy;

RESET ALL;
SELECT ectosync.release('rows');

-- A filter value is read under the same settings (timezone_abbreviations
-- too: "EST" is -05 whatever the session says), and values held with
-- filters that mean the same share one value, however they are written.
SET timezone_abbreviations = 'Australia';  -- its EST is +10
SELECT jsonb_array_length(ectosync.hold('est', 'settings_rows', '[]',
                                        '{"at": "2026-12-01 04:30:00 EST"}', listen => false)
                          -> 'rows') AS est_rows;
RESET timezone_abbreviations;
SELECT jsonb_array_length(ectosync.hold('utc', 'settings_rows', '[]',
                                        '{"at": "2026-12-01 09:30:00+00"}', listen => false)
                          -> 'rows') AS utc_rows;
SELECT name, shared_by FROM ectosync.held() WHERE name IN ('est', 'utc') ORDER BY name;
SELECT ectosync.release('est'), ectosync.release('utc');
-- A value is read once and kept (in plans, shared and held values): a time
-- that moves on ("today", "now") is refused, in a filter and in a $query.
SELECT ectosync.load('settings_rows', '[]', '{"d": "Today"}');
SELECT ectosync.load('settings_rows', '{"$query": {"where": [["at", "<", "now"]]}}');
-- (by the column's base type: a domain over date is one; the label
-- "unknown" of an enum named update_state is no time)
CREATE DOMAIN born_on AS date;
CREATE TYPE update_state AS ENUM ('known', 'unknown');
CREATE TABLE births (id int PRIMARY KEY, day born_on, state update_state, days date[]);
INSERT INTO births VALUES (1, '2026-01-01', 'unknown', '{2026-01-01}');
SELECT ectosync.watch('births') IS NOT NULL AS births_watched;
SELECT ectosync.load('births', '[]', '{"day": "today"}');
SELECT ectosync.load('births', '[]', '{"days": "{today}"}');
SELECT jsonb_array_length(ectosync.load('births', '[]', '{"state": "unknown"}') -> 'rows')
  AS unknown_rows;
SELECT ectosync.unwatch('births');
DROP TABLE births;
DROP DOMAIN born_on;
DROP TYPE update_state;

-- search_path: a held value's tables are the ones it was held for.  Its
-- spec names them as values carry it (qualified); a later call under
-- another search_path, where a temporary table takes the name (pg_temp is
-- searched first), still reads them, and so does every session sharing it.
CREATE TABLE sp_people (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE sp_posts (id int PRIMARY KEY, author_id int REFERENCES sp_people, title text);
INSERT INTO sp_people VALUES (1, 'ann');
INSERT INTO sp_posts VALUES (1, 1, 'first');
SELECT ectosync.watch('sp_posts', '[{"writer": {"belongs_to": "sp_people", "columns": ["author_id"]}}]')
  IS NOT NULL AS watched;
SELECT ectosync.hold('sp', 'sp_posts', '[{"writer": {"belongs_to": "sp_people", "columns": ["author_id"]}}]',
                     listen => false) IS NOT NULL AS held;
SELECT assocs #>> '{writer,belongs_to}' AS held_for FROM ectosync.held() WHERE name = 'sp';
CREATE TEMP TABLE sp_people (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO sp_people VALUES (1, 'forged');
SET search_path = "$user", public;
INSERT INTO public.sp_posts VALUES (2, 1, 'second');
SELECT ectosync.wait_for_worker() AS drained;
SELECT jsonb_path_query_array(c, '$.patch[*].value.writer.name') AS writers
  FROM (SELECT ectosync.changes('sp') AS c) r;
SELECT c #>> '{patch,0,path}' = '' AS whole,
       (c #> '{patch,0,value}') - 'seq' =
       ectosync.load('public.sp_posts', '[{"writer": {"belongs_to": "public.sp_people", "columns": ["author_id"]}}]') - 'seq'
         AS equal_to_a_fresh_load
  FROM (SELECT ectosync.changes('sp', 0) AS c) r;
RESET search_path;
DROP TABLE pg_temp.sp_people;
SELECT ectosync.release('sp') AS released;
SELECT ectosync.unwatch('sp_posts');
DROP TABLE sp_posts, sp_people;

SELECT ectosync.unwatch('settings_rows');
DROP TABLE settings_rows;
