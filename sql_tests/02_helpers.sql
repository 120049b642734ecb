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
