-- A seeded oracle for values with a $query (61_queries shows the features
-- one by one): random shapes, with where, order_by, limit and offset at the
-- root and on a has_many and a many_to_many list, and random writes in
-- transactions of their own, including sort key changes and rows crossing
-- the borders of windows and wheres.  After each round, every value that
-- a client syncs (sync() of each event) and every value held in the
-- session (changes() applied as a JSON Patch) must equal a fresh load().
CREATE SCHEMA qo;
CREATE TABLE qo.posts (id int PRIMARY KEY, author_id int, title text NOT NULL,
                       score int, published bool NOT NULL, inserted_at timestamptz NOT NULL);
CREATE TABLE qo.comments (id int PRIMARY KEY,
                          post_id int NOT NULL REFERENCES qo.posts ON DELETE CASCADE,
                          score int, body text NOT NULL);
CREATE TABLE qo.tags (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE qo.posts_tags (post_id int REFERENCES qo.posts ON DELETE CASCADE,
                            tag_id int REFERENCES qo.tags ON DELETE CASCADE,
                            PRIMARY KEY (post_id, tag_id));
CREATE INDEX ON qo.posts (inserted_at);
SELECT ectosync.watch('qo.posts', '["comments", "tags"]') IS NOT NULL AS watched;
-- Capture carries the order columns of the windows with an offset that a
-- watch names: where a row was before a change, sync() then knows from
-- the event.  Some order columns are carried, some not.
SELECT ectosync.watch('qo.posts', '{"$query": {"order_by": ["score", "title"], "offset": 1},
  "comments": {"$query": {"order_by": "score", "offset": 1}}, "tags": {}}') IS NOT NULL AS watched;
SELECT setseed(0.17);

CREATE FUNCTION qo.pick(VARIADIC options text[]) RETURNS text LANGUAGE sql AS $$
  SELECT options[1 + floor(random() * cardinality(options))::int]
$$;
CREATE FUNCTION qo.rand(n int) RETURNS int LANGUAGE sql AS $$
  SELECT 1 + floor(random() * n)::int
$$;
-- A random $query: its where, order_by, limit and offset each maybe.
CREATE FUNCTION qo.query(wheres text[], orders text[]) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE q jsonb := '{}';
BEGIN
  IF random() < 0.6 THEN q := q || jsonb_build_object('where', wheres[qo.rand(cardinality(wheres))]::jsonb); END IF;
  IF random() < 0.8 THEN q := q || jsonb_build_object('order_by', orders[qo.rand(cardinality(orders))]::jsonb); END IF;
  IF random() < 0.6 THEN q := q || jsonb_build_object('limit', qo.rand(5) - 1); END IF;
  IF random() < 0.3 THEN q := q || jsonb_build_object('offset', qo.rand(3)); END IF;
  RETURN q;
END $$;
CREATE FUNCTION qo.shape() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE s jsonb := '{}';
BEGIN
  s := s || jsonb_build_object('$query', qo.query(
    ARRAY['[["published", "=", true]]', '[["score", ">", 4]]', '[["score", "is null"]]',
          '[["author_id", "in", [1, 3]]]', '[["title", ">=", "m"], ["score", "<=", 7]]',
          '[["inserted_at", "<", "2024-01-05"]]', '{"published": false}',
          '[{"or": [[["score", ">", 7]], [["published", "=", false], ["title", "<", "m"]]]}]'],
    ARRAY['{"score": "desc"}', '"title"', '{"inserted_at": "desc"}',
          '[{"score": "asc nulls first"}, {"title": "desc"}]', '["published", {"score": "desc nulls last"}]']));
  IF random() < 0.8 THEN
    s := s || jsonb_build_object('comments', jsonb_build_object('$query', qo.query(
      ARRAY['[["score", ">", 3]]', '[["body", "<>", "b"]]', '[["score", "is not null"]]',
            '[{"or": [[["score", "is null"]], [["body", ">", "p"]]]}]'],
      ARRAY['{"score": "desc"}', '"body"', '[{"score": "asc"}, {"body": "desc nulls first"}]'])));
  END IF;
  IF random() < 0.6 THEN
    s := s || jsonb_build_object('tags', jsonb_build_object('$query', qo.query(
      ARRAY['[["name", "<", "m"]]', '[["name", "in", ["a", "c", "e", "x"]]]',
            '[{"or": [{"name": "a"}, [["name", ">", "t"]]]}]'],
      ARRAY['"name"', '{"name": "desc"}'])));
  END IF;
  RETURN s;
END $$;

-- Random writes, each in a transaction of its own.
CREATE PROCEDURE qo.writes(n int) LANGUAGE plpgsql AS $$
DECLARE k int; t text := 'abcdefghijklmnopqrstuvwxyz';
BEGIN
  FOR i IN 1..n LOOP
    k := qo.rand(14);
    IF k = 1 THEN
      INSERT INTO qo.posts VALUES ((SELECT coalesce(max(id), 0) + 1 FROM qo.posts), qo.rand(3),
        substr(t, qo.rand(26), 2), nullif(qo.rand(11) - 1, 10), random() < 0.6,
        '2024-01-01'::timestamptz + qo.rand(240) * interval '1 hour');
    ELSIF k = 2 THEN
      UPDATE qo.posts SET score = nullif(qo.rand(11) - 1, 10)
        WHERE id = (SELECT id FROM qo.posts ORDER BY random() LIMIT 1);
    ELSIF k = 3 THEN
      UPDATE qo.posts SET title = substr(t, qo.rand(26), 2), published = NOT published
        WHERE id = (SELECT id FROM qo.posts ORDER BY random() LIMIT 1);
    ELSIF k = 4 THEN
      UPDATE qo.posts SET inserted_at = inserted_at + (qo.rand(100) - 50) * interval '1 hour',
                          author_id = qo.rand(3)
        WHERE id = (SELECT id FROM qo.posts ORDER BY random() LIMIT 1);
    ELSIF k = 5 THEN
      DELETE FROM qo.posts WHERE id = (SELECT id FROM qo.posts ORDER BY random() LIMIT 1);
    ELSIF k IN (6, 7) THEN
      INSERT INTO qo.comments SELECT (SELECT coalesce(max(id), 0) + 1 FROM qo.comments), id,
        nullif(qo.rand(9) - 1, 8), substr(t, qo.rand(26), 1)
        FROM qo.posts ORDER BY random() LIMIT 1;
    ELSIF k = 8 THEN
      UPDATE qo.comments SET score = nullif(qo.rand(9) - 1, 8), body = substr(t, qo.rand(26), 1)
        WHERE id = (SELECT id FROM qo.comments ORDER BY random() LIMIT 1);
    ELSIF k = 9 THEN
      UPDATE qo.comments SET post_id = (SELECT id FROM qo.posts ORDER BY random() LIMIT 1)
        WHERE id = (SELECT id FROM qo.comments ORDER BY random() LIMIT 1);
    ELSIF k = 10 THEN
      DELETE FROM qo.comments WHERE id = (SELECT id FROM qo.comments ORDER BY random() LIMIT 1);
    ELSIF k = 11 THEN
      INSERT INTO qo.tags VALUES ((SELECT coalesce(max(id), 0) + 1 FROM qo.tags), substr(t, qo.rand(26), 1));
    ELSIF k = 12 THEN
      UPDATE qo.tags SET name = substr(t, qo.rand(26), 1)
        WHERE id = (SELECT id FROM qo.tags ORDER BY random() LIMIT 1);
    ELSIF k = 13 THEN
      INSERT INTO qo.posts_tags SELECT p.id, g.id FROM qo.posts p, qo.tags g
        ORDER BY random() LIMIT 1 ON CONFLICT DO NOTHING;
    ELSE
      DELETE FROM qo.posts_tags WHERE (post_id, tag_id) =
        (SELECT post_id, tag_id FROM qo.posts_tags ORDER BY random() LIMIT 1);
    END IF;
    COMMIT;
  END LOOP;
END $$;

CALL qo.writes(120);
SELECT ectosync.wait_for_worker();

-- Values a client syncs, and values held in this session.
CREATE TABLE qo.synced (n int, shape jsonb, filter jsonb, v jsonb);
CREATE TABLE qo.held (n int, shape jsonb, filter jsonb, copy jsonb, version bigint);
CREATE TABLE qo.failures (round int, kind text, shape jsonb, filter jsonb, got jsonb, want jsonb);
CREATE TABLE qo.changed (round int, kind text);
DO $$
DECLARE s jsonb; f jsonb;
BEGIN
  FOR i IN 1..60 LOOP
    s := qo.shape();
    f := CASE WHEN random() < 0.25 THEN '{"author_id": 2}'::jsonb END;
    IF i <= 40 THEN
      INSERT INTO qo.synced VALUES (i, s, f, ectosync.load('qo.posts', s, f));
    ELSE
      INSERT INTO qo.held VALUES (i, s, f, ectosync.hold('q' || i, 'qo.posts', s, f, listen => false), 0);
    END IF;
  END LOOP;
END $$;

CREATE PROCEDURE qo.check(round int) LANGUAGE plpgsql AS $$
DECLARE r record; c jsonb; fresh jsonb; got jsonb;
BEGIN
  PERFORM ectosync.wait_for_worker();
  FOR r IN SELECT * FROM qo.synced LOOP
    got := regress.apply(r.v);
    fresh := ectosync.load('qo.posts', r.shape, r.filter);
    IF (got - 'seq') <> (fresh - 'seq') THEN
      INSERT INTO qo.failures VALUES (round, 'sync', r.shape, r.filter, got -> 'rows', fresh -> 'rows');
    END IF;
    IF (got -> 'rows') <> (r.v -> 'rows') THEN INSERT INTO qo.changed VALUES (round, 'sync'); END IF;
    UPDATE qo.synced SET v = got WHERE n = r.n;
  END LOOP;
  FOR r IN SELECT * FROM qo.held LOOP
    c := ectosync.changes('q' || r.n, r.version);
    got := regress.patch(r.copy, c -> 'patch');
    fresh := ectosync.load('qo.posts', r.shape, r.filter);
    IF (got - 'seq') <> (fresh - 'seq') THEN
      INSERT INTO qo.failures VALUES (round, 'held', r.shape, r.filter, got -> 'rows', fresh -> 'rows');
    END IF;
    IF (got -> 'rows') <> (r.copy -> 'rows') THEN INSERT INTO qo.changed VALUES (round, 'held'); END IF;
    UPDATE qo.held SET copy = got, version = (c ->> 'version')::bigint WHERE n = r.n;
  END LOOP;
END $$;

DO $$
BEGIN
  FOR round IN 1..12 LOOP
    CALL qo.writes(15);
    CALL qo.check(round);
  END LOOP;
END $$;

-- Every value equaled a fresh load after every round.
SELECT count(*) AS failures FROM qo.failures;
SELECT round, kind, shape, filter, jsonb_pretty(got) AS got, jsonb_pretty(want) AS want
  FROM qo.failures ORDER BY round LIMIT 1;
-- The shapes covered windows, orders and wheres at every level, and the
-- writes moved rows in and out of them.
SELECT count(DISTINCT shape) > 30 AS shapes,
       count(*) FILTER (WHERE shape #> '{$query,limit}' IS NOT NULL) > 0 AS root_windows,
       count(*) FILTER (WHERE shape #> '{$query,offset}' IS NOT NULL) > 0 AS root_offsets,
       count(*) FILTER (WHERE shape #> '{comments,$query,limit}' IS NOT NULL) > 0 AS comment_windows,
       count(*) FILTER (WHERE shape #> '{tags,$query,where}' IS NOT NULL) > 0 AS tag_wheres,
       count(*) FILTER (WHERE shape::text LIKE '%"or"%') > 0 AS ors
  FROM (SELECT shape FROM qo.synced UNION ALL SELECT shape FROM qo.held) s;
SELECT kind, count(*) > 40 AS many_values_changed FROM qo.changed GROUP BY kind ORDER BY kind;

SELECT bool_and(ectosync.release('q' || n)) AS released FROM qo.held;
SELECT ectosync.unwatch('qo.posts');
DROP SCHEMA qo CASCADE;
