-- Helpers the sync tests share.  pg_regress runs each file in a session of
-- its own, so they live in a schema, not in pg_temp.
CREATE SCHEMA regress;
GRANT USAGE ON SCHEMA regress TO PUBLIC;

-- The value with every logged event after its seq applied, in order: what
-- a client that LISTENs does with the notifications it receives.
CREATE FUNCTION regress.apply(val jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
  FOR p IN SELECT payload FROM ectosync._events_since((val ->> 'seq')::bigint) LOOP
    val := ectosync.sync(val, p);
  END LOOP;
  RETURN val;
END $$;

-- A fresh load of the value's shape: what sync() must equal ("seq" aside).
CREATE FUNCTION regress.fresh(val jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT ectosync.load((val ->> 'relid')::oid::regclass, val -> 'assocs',
                       nullif(val -> 'filter', 'null'))
$$;

-- A JSON Pointer (RFC 6901) as a jsonb path: '/rows/0/a~1b' -> {rows,0,a/b}.
CREATE FUNCTION regress.pointer(p text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(replace(replace(t, '~1', '/'), '~0', '~') ORDER BY n), '{}')
  FROM unnest((string_to_array(p, '/'))[2:]) WITH ORDINALITY AS u(t, n)
$$;

-- A JSON Patch (RFC 6902: add, remove, replace) applied to val, as a client
-- applies what ectosync.changes() returns; a second implementation of
-- the patch's meaning, in SQL, independent of the server's.
CREATE FUNCTION regress.patch(val jsonb, patch jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  op jsonb;
  path text[];
BEGIN
  FOR op IN SELECT jsonb_array_elements(coalesce(patch, '[]')) LOOP
    path := regress.pointer(op ->> 'path');
    IF op ->> 'op' = 'remove' THEN
      val := val #- path;
    ELSIF cardinality(path) = 0 THEN
      val := op -> 'value';
    ELSIF op ->> 'op' = 'add' AND jsonb_typeof(val #> path[:cardinality(path) - 1]) = 'array' THEN
      val := jsonb_insert(val, path, op -> 'value');
    ELSE
      val := jsonb_set(val, path, op -> 'value', true);
    END IF;
  END LOOP;
  RETURN val;
END $$;

-- Why sync() refuses a value (ZE001: it must be reloaded), as the error's
-- detail says it without the RELOAD marker's id; NULL when every logged
-- event after the value's seq applies.
CREATE FUNCTION regress.reload_reason(val jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE detail text;
BEGIN
  PERFORM regress.apply(val);
  RETURN NULL;
EXCEPTION WHEN SQLSTATE 'ZE001' THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RETURN regexp_replace(detail, ' \(RELOAD marker .*', '');
END $$;

-- What this backend spent so far (Linux): CPU time in clock ticks and the
-- times it slept.  A call that waits without work must add little to both.
CREATE FUNCTION regress.cpu_ticks() RETURNS bigint LANGUAGE sql AS $$
  SELECT s[12]::bigint + s[13]::bigint
    FROM (SELECT string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ') AS s) t
$$;
CREATE FUNCTION regress.sleeps() RETURNS bigint LANGUAGE sql AS $$
  SELECT substring(pg_read_file('/proc/self/status') FROM 'voluntary_ctxt_switches:\s+(\d+)')::bigint
$$;

-- What changes() returns for a held value, in short: its name starts with
-- the role that holds it ("regress_ps_alice docs"; none: the session's).
CREATE FUNCTION regress.got(name text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
  PERFORM set_config('role', coalesce(substring(name FROM '^(regress_[a-z]+_[a-z]+) '), 'none'), true);
  c := ectosync.changes(name);
  PERFORM set_config('role', 'none', true);
  RETURN CASE
    WHEN c -> 'patch' = '[]' THEN 'unchanged'
    WHEN c #>> '{patch,0,path}' = '' THEN
      'reloaded: ' || regexp_replace(c ->> 'reloaded', ' \(RELOAD marker .*', '') ||
      ' ' || jsonb_path_query_array(c, '$.patch[0].value.rows[*].id')::text
    ELSE 'patched: ' || (c -> 'patch')::text
  END;
END $$;

-- What sync() does, as role r, with every logged event since the value's
-- seq: the ids of its rows, or the reason of ZE001.  (The events are read
-- first, as the session's role: _events_since is not granted to PUBLIC.)
CREATE FUNCTION regress.sync_as(r text, v jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  payloads text[] := ARRAY(SELECT payload FROM ectosync._events_since((v ->> 'seq')::bigint));
  p text;
  d text;
BEGIN
  PERFORM set_config('role', r, true);
  FOREACH p IN ARRAY payloads LOOP v := ectosync.sync(v, p); END LOOP;
  PERFORM set_config('role', 'none', true);
  RETURN 'synced ' || jsonb_path_query_array(v, '$.rows[*].id')::text;
EXCEPTION WHEN SQLSTATE 'ZE001' THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN 'ZE001: ' || regexp_replace(d, ' \(RELOAD marker .*', '');
END $$;
