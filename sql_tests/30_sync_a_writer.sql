-- The binary jsonb writer that sync() uses: ectosync._jsonb_rebuild(v, d)
-- rebuilds v with new nodes down to d levels (object keys added in reverse
-- order, so the writer sorts them) and raw byte copies below and in array
-- tails.  The result must be byte-identical to PostgreSQL's own encoding
-- (record image equality compares the binary images) and readable by
-- PostgreSQL's jsonb functions.
CREATE TYPE pg_temp.jbox AS (j jsonb);
CREATE TEMP TABLE samples (id int PRIMARY KEY, j jsonb NOT NULL);
INSERT INTO samples VALUES
  (1, '1'), (2, '"x"'), (3, 'null'), (4, 'true'), (5, 'false'), (6, '[]'), (7, '{}'),
  (8, '[1, "a", null, true, false, 2.5, -0.001, 1e30]'),
  (9, '{"b": 1, "aa": "x", "a": [1, {"z": null}], "c": {}, "d": [], "": "empty key"}'),
  -- more than JB_OFFSET_STRIDE (32) elements/pairs: offsets every 32 entries
  (10, (SELECT jsonb_agg(i) FROM generate_series(1, 100) i)),
  (11, (SELECT jsonb_agg(repeat('s', i)) FROM generate_series(1, 70) i)),
  (12, (SELECT jsonb_object_agg('k' || i,
          CASE i % 4 WHEN 0 THEN to_jsonb(i * 1.5) WHEN 1 THEN to_jsonb(repeat('v', i))
                     WHEN 2 THEN jsonb_build_array(i, 'x', jsonb_build_object('n', i))
                     ELSE to_jsonb(i % 2 = 0) END)
        FROM generate_series(1, 40) i)),
  -- rows like load() makes: objects with strings of every length (alignment)
  (13, (SELECT jsonb_agg(jsonb_build_object('id', i, 'title', repeat('t', i % 7),
          'score', i * 0.1, 'none', NULL,
          'tags', (SELECT coalesce(jsonb_agg(x), '[]') FROM generate_series(1, i % 40) x)))
        FROM generate_series(1, 80) i)),
  (14, '[[[[[1, "deep"]]]], {"a": {"b": {"c": {"d": [1.25, "e"]}}}}]');

-- every sample, rebuilt 0 to 5 levels deep: same bytes, equal
SELECT count(*) AS rebuilt,
       count(*) FILTER (WHERE ROW(ectosync._jsonb_rebuild(j, d))::pg_temp.jbox
                              *= ROW(j)::pg_temp.jbox) AS same_bytes,
       count(*) FILTER (WHERE ectosync._jsonb_rebuild(j, d) = j) AS equal
FROM samples, generate_series(0, 5) d;

-- PostgreSQL's functions read the result
SELECT jsonb_pretty(ectosync._jsonb_rebuild(j, 2)) FROM samples WHERE id = 9;
SELECT r -> 'k39' AS k39, r -> 'k40' AS k40, r -> 'k33' AS k33, r ->> 'k1' AS k1,
       r @> '{"k2": [2, "x"]}' AS contains, jsonb_typeof(r -> 'k4') AS k4_type
FROM (SELECT ectosync._jsonb_rebuild(j, 3) AS r FROM samples WHERE id = 12) s;
SELECT r -> 77 -> 'tags' -> 36 AS tag, jsonb_typeof(r -> 5 -> 'score') AS score_type,
       r -> 79 ->> 'title' AS title, jsonb_array_length(r) AS n, r -> 40 -> 'none' AS none
FROM (SELECT ectosync._jsonb_rebuild(j, 1) AS r FROM samples WHERE id = 13) s;
SELECT ectosync._jsonb_rebuild(j, 4) AS deep, ectosync._jsonb_rebuild(j, 4) #> '{1,a,b,c,d,0}' AS num
FROM samples WHERE id = 14;
SELECT id, ectosync._jsonb_rebuild(j, 1) AS rebuilt, jsonb_typeof(ectosync._jsonb_rebuild(j, 1))
FROM samples WHERE id <= 8 ORDER BY id;

-- It recurses as deep as its input goes: a deep one stops at
-- max_stack_depth (54001), as PostgreSQL's own recursion does, before its
-- C++ frames could reach the stack's end; and it is no API, for no one but
-- a superuser to call.
\set VERBOSITY terse
SELECT ectosync._jsonb_rebuild((repeat('[', 10000) || repeat(']', 10000))::jsonb, 10000) IS NOT NULL
  AS rebuilt;
\set VERBOSITY default
SELECT has_function_privilege('public', 'ectosync._jsonb_rebuild(jsonb, int)', 'EXECUTE')
  AS public_may_call;
