-- Attacks through search_path and pg_temp (issue 14): no code that a role
-- defines may run with more rights than that role has, and no role may
-- make another see a wrong row.  Three kinds of attackers try every
-- privileged path:
--   attack_tmp   LOGIN only: types, casts and functions in pg_temp, and
--                temporary tables (watch, unwatch, DROP TABLE, DROP COLUMN);
--   attack_eve   owner of schema attack_eve: its own operators, with
--                search_path = attack_eve, pg_catalog (watch, unwatch, the
--                sql_drop event trigger, cache misses of changes() and sync());
--   attack_pub   CREATE on schema public: functions that the worker's load
--                query could resolve (unnest, to_jsonb);
-- and attack_owner, the owner of a watched table, defines a cast to json
-- of a column's type, which the worker runs when it reads a row.
-- Each trap records current_user in a log the attacker owns and, when it
-- runs as anyone else, copies a secret row and makes the attacker
-- superuser.  Each attempt is followed by what must hold: rolsuper false,
-- nothing recorded but the attacker itself, no secret copied, and the
-- victim's values equal to its fresh loads.  Attempts swallow their own
-- errors (a refused attempt gains nothing either): only the assertions
-- print.
SET client_min_messages = error;

-- The secret: nobody but the superuser may read it.
CREATE TABLE attack_secret (s text);
INSERT INTO attack_secret VALUES ('the secret');
REVOKE ALL ON attack_secret FROM PUBLIC;

-- A watch that the refreshes re-resolve (unwatch, the sql_drop event
-- trigger), and the table of the cache attacks.
CREATE TABLE attack_shared (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO attack_shared VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four'), (5, 'five');
SELECT ectosync.watch('attack_shared') IS NOT NULL AS watched;

CREATE ROLE attack_tmp LOGIN;
CREATE ROLE attack_eve LOGIN;
CREATE SCHEMA attack_eve AUTHORIZATION attack_eve;
CREATE ROLE attack_pub LOGIN;
GRANT CREATE ON SCHEMA public TO attack_pub;
CREATE ROLE attack_owner LOGIN;
CREATE SCHEMA attack_owner AUTHORIZATION attack_owner;
CREATE ROLE attack_victim LOGIN;

-- What each attacker gained: rolsuper, the rows its traps recorded as run
-- by someone else, the secret rows it holds.
CREATE FUNCTION pg_temp.gained(r text, log regclass, loot regclass) RETURNS TABLE
    (rolsuper boolean, ran_as_others bigint, secrets_copied bigint)
  LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT (SELECT a.rolsuper FROM pg_catalog.pg_roles a WHERE a.rolname = %L),
            (SELECT pg_catalog.count(*) FROM %s WHERE who OPERATOR(pg_catalog.<>) %L),
            (SELECT pg_catalog.count(*) FROM %s)', r, log, r, loot);
END $$;
-- Runs one attempt as the current role, errors swallowed.
CREATE FUNCTION pg_temp.attempt(sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
EXCEPTION WHEN OTHERS THEN
  NULL;
END $$;

-- ==== (a) LOGIN only: jsonb as a type of pg_temp ====
-- Types are looked up in pg_temp first unless search_path names it: a
-- privileged "$1::jsonb" would call the attacker's cast.
SET ROLE attack_tmp;
CREATE TEMP TABLE attack_tmp_log (who text);
CREATE TEMP TABLE attack_tmp_loot (s text);
CREATE TEMP TABLE attack_tmp_t (id int PRIMARY KEY, v text, w text);
CREATE TEMP TABLE attack_tmp_u (id int PRIMARY KEY);
CREATE TYPE pg_temp.jsonb AS (t text);
CREATE FUNCTION pg_temp.trap(x text) RETURNS pg_temp.jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pg_temp.attack_tmp_log VALUES (current_user);
  IF current_user <> 'attack_tmp' THEN
    INSERT INTO pg_temp.attack_tmp_loot SELECT s FROM public.attack_secret;
    ALTER ROLE attack_tmp SUPERUSER;
  END IF;
  RETURN ROW(x)::pg_temp.jsonb;
END $$;
CREATE FUNCTION pg_temp.back(x pg_temp.jsonb) RETURNS pg_catalog.jsonb LANGUAGE sql AS
  $$ SELECT pg_catalog.jsonb_in(pg_catalog.textout(x.t)) $$;
CREATE CAST (text AS pg_temp.jsonb) WITH FUNCTION pg_temp.trap(text);
CREATE CAST (pg_temp.jsonb AS pg_catalog.jsonb) WITH FUNCTION pg_temp.back(pg_temp.jsonb)
  AS IMPLICIT;

-- watch() of a temporary table (refused or not, it must gain nothing)
SELECT pg_temp.attempt($$SELECT ectosync.watch('attack_tmp_t')$$);
SELECT * FROM pg_temp.gained('attack_tmp', 'attack_tmp_log', 'attack_tmp_loot');
RESET ROLE;
ALTER ROLE attack_tmp NOSUPERUSER;
SET ROLE attack_tmp;
-- unwatch(): it refreshes every watch as a superuser
SELECT pg_temp.attempt($$SELECT ectosync.unwatch('attack_tmp_t')$$);
SELECT * FROM pg_temp.gained('attack_tmp', 'attack_tmp_log', 'attack_tmp_loot');
RESET ROLE;
ALTER ROLE attack_tmp NOSUPERUSER;
SET ROLE attack_tmp;
-- the sql_drop event trigger: DROP COLUMN, then DROP TABLE
SELECT pg_temp.attempt($$ALTER TABLE attack_tmp_t DROP COLUMN w$$);
SELECT * FROM pg_temp.gained('attack_tmp', 'attack_tmp_log', 'attack_tmp_loot');
RESET ROLE;
ALTER ROLE attack_tmp NOSUPERUSER;
SET ROLE attack_tmp;
SELECT pg_temp.attempt($$DROP TABLE attack_tmp_t$$);
SELECT * FROM pg_temp.gained('attack_tmp', 'attack_tmp_log', 'attack_tmp_loot');
RESET ROLE;
ALTER ROLE attack_tmp NOSUPERUSER;
SET ROLE attack_tmp;
-- a table never watched: the event trigger still refreshes the watches
SELECT pg_temp.attempt($$DROP TABLE attack_tmp_u$$);
SELECT * FROM pg_temp.gained('attack_tmp', 'attack_tmp_log', 'attack_tmp_loot');
DROP CAST (pg_temp.jsonb AS pg_catalog.jsonb);
DROP CAST (text AS pg_temp.jsonb);
DROP FUNCTION pg_temp.back(pg_temp.jsonb);
DROP FUNCTION pg_temp.trap(text);
DROP TYPE pg_temp.jsonb;
DROP TABLE attack_tmp_log, attack_tmp_loot;
RESET ROLE;
ALTER ROLE attack_tmp NOSUPERUSER;
SELECT count(*) AS watches_of_temporary_tables FROM ectosync.watches w
  JOIN pg_class c ON c.oid = w.root WHERE c.relpersistence = 't';

-- ==== (b) owner of a schema: operator attack_eve.= (oid, oid) ====
-- With search_path = attack_eve, pg_catalog, an unqualified "=" between
-- oids in SQL that runs privileged resolves to the attacker's operator.
SET ROLE attack_eve;
CREATE TABLE attack_eve.log (who text);
CREATE TABLE attack_eve.loot (s text);
CREATE FUNCTION attack_eve.oideq(a oid, b oid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attack_eve.log VALUES (current_user);
  IF current_user <> 'attack_eve' THEN
    INSERT INTO attack_eve.loot SELECT s FROM public.attack_secret;
    ALTER ROLE attack_eve SUPERUSER;
  END IF;
  RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR attack_eve.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = attack_eve.oideq);
CREATE TABLE attack_eve.t (id int PRIMARY KEY, v text, w text);
SET search_path = attack_eve, pg_catalog;
-- watch() of its own table: allowed, and nothing more
SELECT pg_temp.attempt($$SELECT ectosync.watch('attack_eve.t')$$);
SELECT * FROM pg_temp.gained('attack_eve', 'attack_eve.log', 'attack_eve.loot');
SELECT count(*) AS eve_watches FROM ectosync.watches
 WHERE root OPERATOR(pg_catalog.=) 'attack_eve.t'::regclass;
RESET ROLE;
ALTER ROLE attack_eve NOSUPERUSER;
SET ROLE attack_eve;
SET search_path = attack_eve, pg_catalog;
SELECT pg_temp.attempt($$SELECT ectosync.unwatch('attack_eve.t')$$);
SELECT * FROM pg_temp.gained('attack_eve', 'attack_eve.log', 'attack_eve.loot');
SELECT count(*) AS eve_watches FROM ectosync.watches
 WHERE root OPERATOR(pg_catalog.=) 'attack_eve.t'::regclass;
-- watched again, then its column and its table dropped (the sql_drop event
-- trigger), with the operator on search_path and jsonb in pg_temp
SELECT pg_temp.attempt($$SELECT ectosync.watch('attack_eve.t')$$);
SELECT * FROM pg_temp.gained('attack_eve', 'attack_eve.log', 'attack_eve.loot');
RESET ROLE;
ALTER ROLE attack_eve NOSUPERUSER;
TRUNCATE attack_eve.log, attack_eve.loot;
SET ROLE attack_eve;
CREATE TYPE pg_temp.jsonb AS (t text);
CREATE FUNCTION pg_temp.trap(x text) RETURNS pg_temp.jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attack_eve.log VALUES (current_user);
  IF current_user <> 'attack_eve' THEN
    INSERT INTO attack_eve.loot SELECT s FROM public.attack_secret;
    ALTER ROLE attack_eve SUPERUSER;
  END IF;
  RETURN ROW(x)::pg_temp.jsonb;
END $$;
CREATE FUNCTION pg_temp.back(x pg_temp.jsonb) RETURNS pg_catalog.jsonb LANGUAGE sql AS
  $$ SELECT pg_catalog.jsonb_in(pg_catalog.textout(x.t)) $$;
CREATE CAST (text AS pg_temp.jsonb) WITH FUNCTION pg_temp.trap(text);
CREATE CAST (pg_temp.jsonb AS pg_catalog.jsonb) WITH FUNCTION pg_temp.back(pg_temp.jsonb)
  AS IMPLICIT;
SET search_path = attack_eve, pg_catalog;
SELECT count(*) AS eve_watches FROM ectosync.watches
 WHERE root OPERATOR(pg_catalog.=) 'attack_eve.t'::regclass;
SELECT pg_temp.attempt($$ALTER TABLE attack_eve.t DROP COLUMN w$$);
SELECT * FROM pg_temp.gained('attack_eve', 'attack_eve.log', 'attack_eve.loot');
RESET ROLE;
ALTER ROLE attack_eve NOSUPERUSER;
SET ROLE attack_eve;
SET search_path = attack_eve, pg_catalog;
SELECT pg_temp.attempt($$DROP TABLE attack_eve.t$$);
SELECT * FROM pg_temp.gained('attack_eve', 'attack_eve.log', 'attack_eve.loot');
SELECT count(*) AS eve_watches FROM ectosync.watches
 WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) root);
RESET search_path;
DROP CAST (pg_temp.jsonb AS pg_catalog.jsonb);
DROP CAST (text AS pg_temp.jsonb);
DROP FUNCTION pg_temp.back(pg_temp.jsonb);
DROP FUNCTION pg_temp.trap(text);
DROP TYPE pg_temp.jsonb;
DROP OPERATOR attack_eve.= (oid, oid);
RESET ROLE;
ALTER ROLE attack_eve NOSUPERUSER;

-- ==== (c) CREATE on public: functions the worker's load query names ====
-- The worker reads rows of a superuser's tables; public.unnest(text[]) and
-- public.to_jsonb(<its row type>) match the worker's calls better than
-- pg_catalog's polymorphic functions.
CREATE TABLE attack_worker_a (id int PRIMARY KEY, v text);
CREATE TABLE attack_worker_b (id int PRIMARY KEY, v text);
SELECT ectosync.watch('attack_worker_a') IS NOT NULL AS watched,
       ectosync.watch('attack_worker_b') IS NOT NULL AS watched;
SET ROLE attack_pub;
CREATE TABLE public.attack_pub_log (who text);
CREATE TABLE public.attack_pub_loot (s text);
GRANT INSERT ON public.attack_pub_log, public.attack_pub_loot TO PUBLIC;
CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.attack_pub_log VALUES (current_user);
  IF current_user <> 'attack_pub' THEN
    INSERT INTO public.attack_pub_loot SELECT s FROM public.attack_secret;
    ALTER ROLE attack_pub SUPERUSER;
  END IF;
  RETURN QUERY SELECT pg_catalog.unnest(a);
END $$;
RESET ROLE;
-- a client uses the table (the worker reads its rows ahead), a row changes
SELECT count(*) AS channels FROM ectosync.channels('attack_worker_a');
INSERT INTO attack_worker_a VALUES (1, 'a');
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE attack_pub;
DROP FUNCTION public.unnest(text[]);
SELECT * FROM pg_temp.gained('attack_pub', 'public.attack_pub_log', 'public.attack_pub_loot');
RESET ROLE;
ALTER ROLE attack_pub NOSUPERUSER;
SET ROLE attack_pub;
CREATE FUNCTION public.to_jsonb(r public.attack_worker_b) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.attack_pub_log VALUES (current_user);
  IF current_user <> 'attack_pub' THEN
    INSERT INTO public.attack_pub_loot SELECT s FROM public.attack_secret;
    ALTER ROLE attack_pub SUPERUSER;
  END IF;
  RETURN pg_catalog.to_jsonb(r);
END $$;
RESET ROLE;
SELECT count(*) AS channels FROM ectosync.channels('attack_worker_b');
INSERT INTO attack_worker_b VALUES (1, 'b');
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE attack_pub;
DROP FUNCTION public.to_jsonb(public.attack_worker_b);
SELECT * FROM pg_temp.gained('attack_pub', 'public.attack_pub_log', 'public.attack_pub_loot');
RESET ROLE;
ALTER ROLE attack_pub NOSUPERUSER;
-- the rows the worker read are the tables' own
SELECT ectosync.load('attack_worker_a') -> 'rows' AS a_rows,
       ectosync.load('attack_worker_b') -> 'rows' AS b_rows;

-- ==== a table owner's cast to json, run by the worker's to_jsonb ====
-- It must run with the owner's rights: it records attack_owner, never the
-- superuser.
SET ROLE attack_owner;
CREATE TABLE attack_owner.log (who text);
CREATE TABLE attack_owner.loot (s text);
CREATE TYPE attack_owner.mood AS ENUM ('calm', 'angry');
CREATE FUNCTION attack_owner.mood_json(m attack_owner.mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attack_owner.log VALUES (current_user);
  IF current_user <> 'attack_owner' THEN
    INSERT INTO attack_owner.loot SELECT s FROM public.attack_secret;
    ALTER ROLE attack_owner SUPERUSER;
  END IF;
  RETURN pg_catalog.to_json(m::text);
END $$;
CREATE CAST (attack_owner.mood AS json) WITH FUNCTION attack_owner.mood_json(attack_owner.mood);
CREATE TABLE attack_owner.t (id int PRIMARY KEY, m attack_owner.mood);
SELECT ectosync.watch('attack_owner.t') IS NOT NULL AS watched;
SELECT count(*) AS channels FROM ectosync.channels('attack_owner.t');
INSERT INTO attack_owner.t VALUES (1, 'calm');
SELECT ectosync.wait_for_worker() AS drained;
SELECT * FROM pg_temp.gained('attack_owner', 'attack_owner.log', 'attack_owner.loot');
SELECT array_agg(DISTINCT who) AS cast_ran_as FROM attack_owner.log;
RESET ROLE;
ALTER ROLE attack_owner NOSUPERUSER;

-- ==== a type owner's cast to json, on another role's table ====
-- attack_victim's table has a column of attack_owner's type, and
-- attack_owner casts it to json afterwards: the worker, which reads the
-- table as attack_victim, must not run that cast (its reads would run
-- attack_owner's code with attack_victim's rights).  It leaves the table's
-- rows to the sessions that read them, whose own reads run it as their own
-- SELECT of the table would.  The trap records who ran it, and the
-- session's application_name (the worker's is empty).
CREATE SCHEMA attack_victim AUTHORIZATION attack_victim;
GRANT USAGE ON SCHEMA attack_owner TO attack_victim;
SET ROLE attack_owner;
CREATE TYPE attack_owner.level AS ENUM ('low', 'high');
CREATE TABLE attack_owner.level_log (who text, app text);
GRANT INSERT ON attack_owner.level_log TO PUBLIC;
SET ROLE attack_victim;
CREATE TABLE attack_victim.levels (id int PRIMARY KEY, l attack_owner.level);
INSERT INTO attack_victim.levels VALUES (1, 'low');
SELECT ectosync.watch('attack_victim.levels') IS NOT NULL AS watched;
CREATE TEMP TABLE levels_copy AS
  SELECT ectosync.hold('levels', 'attack_victim.levels', listen => false) AS v;
SET ROLE attack_owner;
CREATE FUNCTION attack_owner.level_json(l attack_owner.level) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attack_owner.level_log
    VALUES (current_user, pg_catalog.current_setting('application_name'));
  RETURN pg_catalog.to_json(l::text);
END $$;
CREATE CAST (attack_owner.level AS json) WITH FUNCTION attack_owner.level_json(attack_owner.level);
SET ROLE attack_victim;
INSERT INTO attack_victim.levels VALUES (2, 'high');
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE attack_owner;
SELECT who, app, count(*) AS runs FROM attack_owner.level_log GROUP BY 1, 2;
SET ROLE attack_victim;
UPDATE levels_copy SET v = regress.patch(v, ectosync.changes('levels') -> 'patch');
SELECT v -> 'rows' AS held, (v - 'seq') = (ectosync.load('attack_victim.levels') - 'seq')
  AS held_equals_a_fresh_load FROM levels_copy;
SELECT ectosync.release('levels') AS released;
SET ROLE attack_owner;
SELECT who, app FROM attack_owner.level_log GROUP BY 1, 2;
RESET ROLE;

-- ==== a cast that changes a pinned setting while rows are read ====
-- attack_owner's cast to json sets TimeZone for the rest of the
-- statement: the columns and rows read after it, and any ecto_sync call
-- it made, would render otherwise than in every other session (and a row
-- read on a cache miss would be served so to every role).  The read fails
-- instead, naming the setting, and the session's own TimeZone is as it was.
SET ROLE attack_owner;
CREATE TYPE attack_owner.zone AS ENUM ('z');
CREATE FUNCTION attack_owner.zone_json(z attack_owner.zone) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('TimeZone', 'Asia/Kathmandu', false);
  RETURN pg_catalog.to_json(z::text);
END $$;
CREATE CAST (attack_owner.zone AS json) WITH FUNCTION attack_owner.zone_json(attack_owner.zone);
CREATE TABLE attack_owner.clock (id int PRIMARY KEY, z attack_owner.zone, at timestamptz);
INSERT INTO attack_owner.clock VALUES (1, 'z', '2026-01-01 00:00+00');
GRANT SELECT ON attack_owner.clock TO attack_victim;
SELECT ectosync.watch('attack_owner.clock') IS NOT NULL AS watched;
SET ROLE attack_victim;
SHOW TimeZone;
SELECT ectosync.load('attack_owner.clock') -> 'rows' AS rows;
SHOW TimeZone;
RESET ROLE;

-- ==== a domain's CHECK, run by the refreshes that resolve every watch ====
-- A $query value is rendered through a cast to its column's type, which
-- runs a domain's CHECK.  watch() by anyone (here the superuser's), and
-- DDL on a watched table, resolve every stored watch again, as the
-- superuser: with the values as stored, never cast again.
SET ROLE attack_owner;
CREATE FUNCTION attack_owner.mood_ok(m text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attack_owner.log VALUES (current_user);
  IF current_user <> 'attack_owner' THEN
    INSERT INTO attack_owner.loot SELECT s FROM public.attack_secret;
    ALTER ROLE attack_owner SUPERUSER;
  END IF;
  RETURN true;
END $$;
CREATE DOMAIN attack_owner.checked AS text CHECK (attack_owner.mood_ok(VALUE));
CREATE TABLE attack_owner.d (id int PRIMARY KEY, k attack_owner.checked);
SELECT ectosync.watch('attack_owner.d', '{"$query": {"where": [["k", "=", "x"]]}}')
  IS NOT NULL AS watched;
RESET ROLE;
SELECT ectosync.watch('attack_shared') IS NOT NULL AS watched_again;
SELECT * FROM pg_temp.gained('attack_owner', 'attack_owner.log', 'attack_owner.loot');
SELECT array_agg(DISTINCT who) AS check_ran_as FROM attack_owner.log;
ALTER ROLE attack_owner NOSUPERUSER;
-- The superuser's watch of its own table with a list of attack_owner's
-- table: attack_owner gives the listed column its trap domain, and the
-- event trigger's refresh resolves the superuser's watch.
CREATE TABLE attack_boards (id int PRIMARY KEY);
INSERT INTO attack_boards VALUES (1);
GRANT REFERENCES ON attack_boards TO attack_owner;
SET ROLE attack_owner;
CREATE TABLE attack_owner.cards (id int PRIMARY KEY, board_id int REFERENCES public.attack_boards,
                                 status text);
RESET ROLE;
SELECT ectosync.watch('attack_boards',
                      '{"cards": {"$query": {"where": [["status", "=", "open"]]}}}') IS NOT NULL
  AS watched;
SET ROLE attack_owner;
ALTER TABLE attack_owner.cards ALTER COLUMN status TYPE attack_owner.checked;
RESET ROLE;
SELECT * FROM pg_temp.gained('attack_owner', 'attack_owner.log', 'attack_owner.loot');
ALTER ROLE attack_owner NOSUPERUSER;
SELECT ectosync.unwatch('attack_boards');

-- ==== the shared cache: a row read on a miss with the caller's "=" ====
-- attack_eve's attack_eve.= (int, int) is always true: a keyed read of
-- post 5 with it finds post 1 first.  A row read on a cache miss is put in
-- the cache shared by every role; attack_victim then syncs its value of
-- the same table from the cache.  Misses are made by raising the cache
-- floor (a table starts being captured: rows cached before are stale).
CREATE TABLE attack_floor (id int PRIMARY KEY);
CREATE FUNCTION pg_temp.bump_cache_floor() RETURNS void LANGUAGE sql AS $$
  SELECT ectosync.unwatch('attack_floor');
  SELECT ectosync.watch('attack_floor');
  SELECT NULL::void $$;
CREATE TABLE attack_events (seq bigint, payload text);
CREATE TABLE attack_values (role text, v jsonb);
GRANT SELECT ON attack_shared, attack_events TO attack_eve, attack_victim;
GRANT ALL ON attack_values TO attack_eve, attack_victim;
-- (the worker has logged the RELOAD markers of what came before: of
-- roles made or dropped too, which reach every value under policies)
SELECT ectosync.wait_for_worker() AS settled \gset
CREATE TEMP TABLE attack_mark AS SELECT last_seq AS seq FROM ectosync.stats;
-- the superuser hands out the payloads (a client gets them by LISTEN)
CREATE FUNCTION pg_temp.collect() RETURNS void LANGUAGE sql AS $$
  INSERT INTO attack_events SELECT seq, payload FROM ectosync._events_since((SELECT seq FROM attack_mark));
  UPDATE attack_mark SET seq = greatest(seq, (SELECT max(seq) FROM attack_events)) $$;
CREATE FUNCTION pg_temp.apply_events(val jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
  FOR p IN SELECT payload FROM attack_events WHERE seq > (val ->> 'seq')::bigint ORDER BY seq LOOP
    val := ectosync.sync(val, p);
  END LOOP;
  RETURN val;
END $$;
-- what the victim must see: its synced value equals its fresh load
CREATE FUNCTION pg_temp.victim_check() RETURNS TABLE (victim_synced boolean, titles jsonb)
  LANGUAGE sql AS $$
  SELECT (pg_temp.apply_events(v) - 'seq') = (ectosync.load('attack_shared') - 'seq'),
         jsonb_path_query_array(pg_temp.apply_events(v), '$.rows[*].title')
  FROM attack_values WHERE role = 'victim' $$;

SET ROLE attack_eve;
CREATE FUNCTION attack_eve.inteq(a int, b int) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR attack_eve.= (LEFTARG = int, RIGHTARG = int, FUNCTION = attack_eve.inteq);
SELECT ectosync.hold('attack_p', 'attack_shared', listen => false) IS NOT NULL AS held;
INSERT INTO attack_values SELECT 'eve', ectosync.load('attack_shared');
SET ROLE attack_victim;
INSERT INTO attack_values SELECT 'victim', ectosync.load('attack_shared');
RESET ROLE;

-- through changes(): the held value's event reads post 5 on a miss
UPDATE attack_shared SET title = 'five v2' WHERE id = 5;
SELECT ectosync.wait_for_worker() AS drained;
SELECT pg_temp.collect();
SELECT pg_temp.bump_cache_floor();
SET ROLE attack_eve;
SET search_path = attack_eve, pg_catalog;
SELECT pg_temp.attempt($$SELECT ectosync.changes('attack_p', 0)$$);
RESET search_path;
SET ROLE attack_victim;
SELECT * FROM pg_temp.victim_check();
RESET ROLE;

-- through sync(): the stateless value's event reads post 4 on a miss
UPDATE attack_shared SET title = 'four v2' WHERE id = 4;
SELECT ectosync.wait_for_worker() AS drained;
SELECT pg_temp.collect();
SELECT pg_temp.bump_cache_floor();
SET ROLE attack_eve;
SET search_path = attack_eve, pg_catalog;
SELECT pg_temp.attempt($$SELECT ectosync.sync(v, (SELECT payload FROM public.attack_events ORDER BY seq DESC LIMIT 1)) FROM public.attack_values WHERE role = 'eve'$$);
RESET search_path;
SELECT ectosync.release('attack_p') AS released;
SET ROLE attack_victim;
SELECT * FROM pg_temp.victim_check();
RESET ROLE;
-- and the superuser's fresh view agrees
SELECT jsonb_path_query_array(ectosync.load('attack_shared'), '$.rows[*].title') AS titles;

-- ==== (e) owner of a schema: another role's watched table renamed away ====
-- attack_eve owns schema attack_lab, where attack_victim keeps a watched
-- table.  Renaming the schema moves the table away from its name, which
-- eve then gives to a view of its own that calls a trap.  The worker
-- reads the table as its owner, the victim, and the victim's session
-- holds a value of it: neither may read the view by the table's old name.
GRANT CREATE ON DATABASE :"DBNAME" TO attack_eve;
SET ROLE attack_eve;
CREATE SCHEMA attack_lab;
GRANT USAGE, CREATE ON SCHEMA attack_lab TO attack_victim;
GRANT INSERT ON attack_eve.log, attack_eve.loot TO PUBLIC;
GRANT USAGE ON SCHEMA attack_eve TO PUBLIC;
CREATE FUNCTION attack_eve.peek() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attack_eve.log VALUES (current_user);
  IF current_user <> 'attack_eve' THEN
    INSERT INTO attack_eve.loot SELECT s FROM public.attack_diary;
  END IF;
  RETURN 'forged';
END $$;
RESET ROLE;
CREATE TABLE attack_diary (s text);
INSERT INTO attack_diary VALUES ('the victim''s secret');
ALTER TABLE attack_diary OWNER TO attack_victim;
SET ROLE attack_victim;
CREATE TABLE attack_lab.people (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO attack_lab.people VALUES (1, 'vic');
CREATE TABLE attack_lab.notes (id int PRIMARY KEY, body text NOT NULL, author_id int);
INSERT INTO attack_lab.notes VALUES (1, 'one', 1), (2, 'two', 1);
SELECT ectosync.watch('attack_lab.notes') IS NOT NULL AS watched;
\set authors '[{"author": {"belongs_to": "attack_lab.people", "columns": ["author_id"]}}]'
SELECT ectosync.watch('attack_lab.notes', :'authors') IS NOT NULL AS watched;
SELECT ectosync.hold('attack_notes', 'attack_lab.notes', listen => false) IS NOT NULL AS held;
SELECT ectosync.hold('attack_authors', 'attack_lab.notes', :'authors', listen => false)
  IS NOT NULL AS held;
GRANT SELECT ON attack_lab.notes TO attack_eve;
UPDATE attack_lab.notes SET body = 'one v2' WHERE id = 1;
SELECT ectosync.wait_for_worker() AS drained;
SELECT ectosync.changes('attack_notes') -> 'patch' <> '[]' AS synced_before;
SELECT 'attack_lab.notes'::regclass::oid AS notes_oid \gset
RESET ROLE;
SET ROLE attack_eve;
BEGIN;
ALTER SCHEMA attack_lab RENAME TO attack_lab_old;
CREATE SCHEMA attack_lab;
GRANT USAGE ON SCHEMA attack_lab TO PUBLIC;
CREATE VIEW attack_lab.notes AS SELECT g AS id, attack_eve.peek() AS body FROM generate_series(1, 3) g;
GRANT SELECT ON attack_lab.notes TO PUBLIC;
CREATE TABLE attack_lab.people (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO attack_lab.people VALUES (1, 'forged');
GRANT SELECT ON attack_lab.people TO PUBLIC;
COMMIT;
RESET ROLE;
-- the victim writes: the worker reads the changed row, by the table's oid
SET ROLE attack_victim;
UPDATE attack_lab_old.notes SET body = 'two v2' WHERE id = 2;
SELECT ectosync.wait_for_worker() AS drained;
-- the held value takes the change, or reloads (the rename's marker)
SELECT c #>> '{patch,0,path}' = '' AS whole,
       (c #> '{patch,0,value}') - 'seq' = ectosync.load(:notes_oid::regclass) - 'seq'
         AS equal_to_a_fresh_load,
       jsonb_path_query_array(c, '$.patch[0].value.rows[*].body') AS bodies
  FROM (SELECT ectosync.changes('attack_notes', 0) AS c) r;
SELECT ectosync.release('attack_notes') AS released;
-- a value whose assocs name a table of the schema (by name: specs are
-- written so) is no longer one of the tables it was held for: an error
-- says to hold it again, rather than a value of the look-alike
SELECT jsonb_path_query_array(ectosync.changes('attack_authors', 0),
                              '$.patch[0].value.rows[*].author.name') AS authors;
-- and eve, who may read notes but not the victim's people, holding the
-- same spec (the same text: it now names eve's look-alike) gets a value of
-- her own, not the victim's shared one (she watches her look-alike: a
-- value is loaded only when every table of it is captured)
RESET ROLE;
SET ROLE attack_eve;
SELECT ectosync.watch('attack_lab.people') IS NOT NULL AS eve_watched;
SELECT jsonb_path_query_array(
         ectosync.hold('eve_authors', 'attack_lab_old.notes', :'authors', listen => false),
         '$.rows[*].author.name') AS eve_authors;
SELECT name, shared_by FROM ectosync.held() ORDER BY name;
SELECT ectosync.release('eve_authors') AS released;
SELECT ectosync.unwatch('attack_lab.people');
RESET ROLE;
SET ROLE attack_victim;
SELECT ectosync.release('attack_authors') AS released;
RESET ROLE;
SELECT * FROM pg_temp.gained('attack_eve', 'attack_eve.log', 'attack_eve.loot');
-- The check behind the names (pg/table_names.cpp, unit-tested in
-- client/unit/sql_check_test.cpp) looks only at the SQL that ecto_sync
-- runs: a session's own query with a marker's text runs as written.
SELECT count(*) AS own_marked_query FROM /*ectosync:1*/ attack_lab_old.notes;
SELECT ectosync.unwatch(:notes_oid::regclass);
DROP SCHEMA attack_lab, attack_lab_old CASCADE;
DROP TABLE attack_diary;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM attack_eve', current_database()); END $$;

-- ==== ecto_sync's SQL functions run no operator of the caller's path ====
-- A caller whose search_path puts public before pg_catalog: an operator
-- that attack_pub made there (an exact match of pg_catalog's ->>) would
-- run with the caller's rights inside ectosync.associations().
CREATE TABLE attack_pa (id int PRIMARY KEY);
CREATE TABLE attack_ch (id int PRIMARY KEY, attack_pa_id int REFERENCES attack_pa);
SET ROLE attack_pub;
CREATE FUNCTION public.attack_arrow(jsonb, text) RETURNS text LANGUAGE sql
  AS $$ SELECT 'run by ' || current_user $$;
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.attack_arrow);
RESET ROLE;
SET search_path = public, pg_catalog;
SELECT name, kind, target FROM ectosync.associations('attack_pa');
RESET search_path;
DROP OPERATOR public.->> (jsonb, text);
DROP FUNCTION public.attack_arrow(jsonb, text);
DROP TABLE attack_ch, attack_pa;

-- ==== a security-restricted operation plants no held value or LISTEN ====
-- A table owner's index expression runs, as its owner, in the session of
-- whoever builds the index (a superuser's REINDEX): it may not leave a
-- held value or a LISTEN there, as PostgreSQL refuses its LISTEN.
SET ROLE attack_pub;
CREATE TABLE public.attack_sro (x int);
INSERT INTO public.attack_sro VALUES (1);
CREATE FUNCTION public.attack_plant(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM ectosync.listen_changes();
  RETURN $1;
END $$;
RESET ROLE;
\set VERBOSITY terse
CREATE INDEX attack_sro_i ON public.attack_sro (public.attack_plant(x));
\set VERBOSITY default
SELECT count(*) AS listening FROM pg_listening_channels();
DROP TABLE public.attack_sro;
DROP FUNCTION public.attack_plant(int);

-- ==== nothing gained by anyone, at the end ====
SELECT rolname, rolsuper FROM pg_roles WHERE rolname LIKE 'attack\_%' ORDER BY rolname;

-- ==== clean up ====
SELECT ectosync.unwatch('attack_shared');
SELECT ectosync.unwatch('attack_floor');
SELECT ectosync.unwatch('attack_worker_a');
SELECT ectosync.unwatch('attack_worker_b');
SELECT ectosync.unwatch('attack_owner.t');
SELECT ectosync.unwatch('attack_owner.d');
SELECT ectosync.unwatch('attack_victim.levels');
SELECT ectosync.unwatch('attack_owner.clock');
DROP TABLE attack_boards CASCADE;
DROP TABLE attack_secret, attack_shared, attack_floor, attack_events, attack_values,
  attack_worker_a, attack_worker_b;
DROP SCHEMA attack_eve, attack_owner, attack_victim CASCADE;
REVOKE CREATE ON SCHEMA public FROM attack_pub;
DROP OWNED BY attack_tmp, attack_eve, attack_pub, attack_owner, attack_victim;
DROP ROLE attack_tmp, attack_eve, attack_pub, attack_owner, attack_victim;
SELECT count(*) AS watches_left FROM ectosync.watches;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
