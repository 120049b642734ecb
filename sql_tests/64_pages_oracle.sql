-- A seeded oracle for pages (windows with an offset), which 62_queries_oracle
-- draws too, but rarely with what a page patches without reading: the
-- watch names the pages' order columns, so events carry where a row was,
-- and most pages have no where.  Rounds of random writes move rows into,
-- out of, ahead of and behind pages (and the children of a has_many page),
-- in transactions of their own; the values are synced with all of a
-- round's events at once, so that an event is applied with its rows'
-- later states.  After each round every value equals a fresh load().
CREATE SCHEMA qp;
CREATE TABLE qp.items (id int PRIMARY KEY, score int, grp int NOT NULL);
CREATE TABLE qp.notes (id int PRIMARY KEY, item_id int NOT NULL REFERENCES qp.items ON DELETE CASCADE,
                       rank int NOT NULL);
CREATE INDEX ON qp.items (score);
SELECT ectosync.watch('qp.items', '{"$query": {"order_by": "score", "offset": 1},
  "notes": {"$query": {"order_by": "rank", "offset": 1}}}') IS NOT NULL AS watched;
SELECT setseed(0.64);
CREATE FUNCTION qp.rand(n int) RETURNS int LANGUAGE sql AS $$
  SELECT 1 + floor(random() * n)::int
$$;
INSERT INTO qp.items SELECT i, nullif(qp.rand(30), 30), qp.rand(2) FROM generate_series(1, 24) i;
INSERT INTO qp.notes SELECT i, qp.rand(24), qp.rand(20) FROM generate_series(1, 60) i;

-- A random page: by score (either direction, NULLs either end), sometimes
-- under a where; with a page of notes by rank inside, sometimes.
CREATE FUNCTION qp.shape() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE q jsonb;
BEGIN
  q := jsonb_build_object('order_by', jsonb_build_object('score',
         (ARRAY['asc', 'desc', 'asc nulls first', 'desc nulls last'])[qp.rand(4)]),
       'limit', qp.rand(4), 'offset', qp.rand(5));
  IF random() < 0.2 THEN q := q || '{"where": [["grp", "=", 1]]}'; END IF;
  IF random() < 0.4 THEN
    RETURN jsonb_build_object('$query', q, 'notes', jsonb_build_object('$query',
      jsonb_build_object('order_by', 'rank', 'limit', qp.rand(3), 'offset', qp.rand(3))));
  END IF;
  RETURN jsonb_build_object('$query', q);
END $$;

CREATE PROCEDURE qp.writes(n int) LANGUAGE plpgsql AS $$
DECLARE k int;
BEGIN
  FOR i IN 1..n LOOP
    k := qp.rand(8);
    IF k <= 3 THEN
      UPDATE qp.items SET score = nullif(qp.rand(30), 30)
        WHERE id = (SELECT id FROM qp.items ORDER BY random() LIMIT 1);
    ELSIF k = 4 THEN
      DELETE FROM qp.items WHERE id = (SELECT id FROM qp.items ORDER BY random() LIMIT 1);
    ELSIF k = 5 THEN
      INSERT INTO qp.items VALUES ((SELECT coalesce(max(id), 0) + 1 FROM qp.items),
                                   nullif(qp.rand(30), 30), qp.rand(2));
    ELSIF k = 6 THEN
      UPDATE qp.notes SET rank = qp.rand(20)
        WHERE id = (SELECT id FROM qp.notes ORDER BY random() LIMIT 1);
    ELSIF k = 7 THEN
      UPDATE qp.notes SET item_id = (SELECT id FROM qp.items ORDER BY random() LIMIT 1)
        WHERE id = (SELECT id FROM qp.notes ORDER BY random() LIMIT 1);
    ELSE
      INSERT INTO qp.notes SELECT (SELECT coalesce(max(id), 0) + 1 FROM qp.notes), id, qp.rand(20)
        FROM qp.items ORDER BY random() LIMIT 1;
    END IF;
    COMMIT;
  END LOOP;
END $$;

CREATE TABLE qp.synced (n int, v jsonb);
CREATE TABLE qp.held (n int, shape jsonb, copy jsonb, version bigint);
CREATE TABLE qp.failures (round int, kind text, shape jsonb, got jsonb, want jsonb);
DO $$
BEGIN
  FOR i IN 1..40 LOOP
    IF i <= 28 THEN
      INSERT INTO qp.synced VALUES (i, ectosync.load('qp.items', qp.shape()));
    ELSE
      INSERT INTO qp.held SELECT i, s, ectosync.hold('p' || i, 'qp.items', s, listen => false), 0
        FROM qp.shape() s;
    END IF;
  END LOOP;
END $$;

CREATE PROCEDURE qp.check(round int) LANGUAGE plpgsql AS $$
DECLARE r record; c jsonb; got jsonb; fresh jsonb;
BEGIN
  PERFORM ectosync.wait_for_worker();
  FOR r IN SELECT * FROM qp.synced LOOP
    got := regress.apply(r.v);
    fresh := regress.fresh(r.v);
    IF (got - 'seq') <> (fresh - 'seq') THEN
      INSERT INTO qp.failures VALUES (round, 'sync', r.v -> 'assocs', got -> 'rows', fresh -> 'rows');
    END IF;
    UPDATE qp.synced SET v = got WHERE n = r.n;
  END LOOP;
  FOR r IN SELECT * FROM qp.held LOOP
    c := ectosync.changes('p' || r.n, r.version);
    got := regress.patch(r.copy, c -> 'patch');
    fresh := ectosync.load('qp.items', r.shape);
    IF (got - 'seq') <> (fresh - 'seq') THEN
      INSERT INTO qp.failures VALUES (round, 'held', r.shape, got -> 'rows', fresh -> 'rows');
    END IF;
    UPDATE qp.held SET copy = got, version = (c ->> 'version')::bigint WHERE n = r.n;
  END LOOP;
END $$;

DO $$
BEGIN
  FOR round IN 1..30 LOOP
    CALL qp.writes(8);
    CALL qp.check(round);
  END LOOP;
END $$;

-- Every value equaled a fresh load after every round.
SELECT count(*) AS failures FROM qp.failures;
SELECT round, kind, shape, got, want FROM qp.failures ORDER BY round LIMIT 1;
-- The pages were full and moved: most values' rows changed over the rounds.
SELECT count(*) FILTER (WHERE jsonb_array_length(v -> 'rows') > 0) > 20 AS pages_with_rows,
       count(*) FILTER (WHERE v #> '{assocs,notes}' IS NOT NULL) > 5 AS pages_of_notes
  FROM qp.synced;

SELECT bool_and(ectosync.release('p' || n)) AS released FROM qp.held;
SELECT ectosync.unwatch('qp.items');
DROP SCHEMA qp CASCADE;
