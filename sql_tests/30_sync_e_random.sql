-- sync(): random transactions (some with failed subtransactions) on the blog
-- tables; after each round every holder applies its events, and each value
-- must equal a fresh load.  Deterministic: setseed.
-- watch() may tell which triggers it replaces: not what is tested here
SET client_min_messages = warning;
-- one random change; constraint violations roll back their subtransaction
CREATE FUNCTION pg_temp.random_change() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  k int := (random() * 11)::int;
  p int := 1 + (random() * 12)::int;
  q int := 1 + (random() * 12)::int;
  c int := 1 + (random() * 30)::int;
  who bigint := 1 + (random() * 5)::int;
BEGIN
  CASE k
    WHEN 0 THEN INSERT INTO posts VALUES (p, who, 'post ' || p) ON CONFLICT DO NOTHING;
    WHEN 1 THEN UPDATE posts SET title = title || '.', author_id = CASE WHEN random() < 0.3 THEN NULL ELSE who END WHERE id = p;
    WHEN 2 THEN DELETE FROM posts WHERE id = p;
    WHEN 3 THEN INSERT INTO comments VALUES (c, p, who, 'comment ' || c) ON CONFLICT (id) DO UPDATE SET post_id = EXCLUDED.post_id;
    WHEN 4 THEN UPDATE comments SET post_id = p, body = body || '!' WHERE id = c;
    WHEN 5 THEN DELETE FROM comments WHERE id = c;
    WHEN 6 THEN INSERT INTO posts_tags VALUES (p, 1 + q % 3) ON CONFLICT DO NOTHING;
    WHEN 7 THEN DELETE FROM posts_tags WHERE post_id = p AND tag_id = 1 + q % 3;
    WHEN 8 THEN INSERT INTO persons VALUES (who, 'person ' || who) ON CONFLICT (id) DO UPDATE SET name = persons.name || '~';
    WHEN 9 THEN INSERT INTO profiles VALUES (100 + who, who, 'bio') ON CONFLICT (id) DO UPDATE SET bio = profiles.bio || '+';
    WHEN 10 THEN DELETE FROM profiles WHERE person_id = who;
    ELSE UPDATE comments SET id = c + 40 WHERE id = c AND NOT EXISTS (SELECT 1 FROM comments WHERE id = c + 40);
  END CASE;
EXCEPTION WHEN foreign_key_violation OR unique_violation THEN
  NULL;
END $$;
CREATE TEMP TABLE holders (name text PRIMARY KEY, val jsonb NOT NULL);
CREATE TEMP TABLE rounds (n int, bad text[], bad_held text[]);

SELECT ectosync.watch('posts', '["author", "tags", {"comments": ["author"]}]') IS NOT NULL AS watched;
SELECT ectosync.watch('persons', '["profile", {"posts": ["tags", "comments"]}, "comments"]') IS NOT NULL AS watched;
SELECT ectosync.watch('tags', '[{"posts": [{"comments": ["author"]}]}]') IS NOT NULL AS watched;
SELECT ectosync.watch('comments', '[{"post": ["author", "tags"]}]') IS NOT NULL AS watched;
INSERT INTO holders VALUES
  ('posts', ectosync.load('posts', '["author", "tags", {"comments": ["author"]}]')),
  ('posts of 2', ectosync.load('posts', '["author", "tags", {"comments": ["author"]}]', '{"author_id": 2}')),
  ('persons', ectosync.load('persons', '["profile", {"posts": ["tags", "comments"]}, "comments"]')),
  ('tags', ectosync.load('tags', '[{"posts": [{"comments": ["author"]}]}]')),
  ('comments', ectosync.load('comments', '[{"post": ["author", "tags"]}]'));
-- Each shape is also held in the session (hold() without its LISTEN, which
-- would print notifications here); its copy follows changes() patches.
-- Small parts (see 31_held), so that rows move between many of them.
SET ectosync.held_part_size = 600;
ALTER TABLE holders ADD copy jsonb, ADD version bigint, ADD whole_values int DEFAULT 0;
UPDATE holders SET copy = ectosync.hold(name, (val ->> 'relid')::oid::regclass, val -> 'assocs',
                                         nullif(val -> 'filter', 'null'), listen => false),
                   version = 0;

SELECT setseed(0.42);
DO $$
DECLARE i int; j int;
BEGIN
  FOR i IN 1..40 LOOP
    FOR j IN 1..(1 + (random() * 4)::int) LOOP
      PERFORM pg_temp.random_change();
    END LOOP;
    COMMIT;
    UPDATE holders h SET val = regress.apply(h.val);
    UPDATE holders h SET copy = regress.patch(h.copy, c.c -> 'patch'),
                         version = (c.c ->> 'version')::bigint,
                         whole_values = h.whole_values + coalesce((c.c #>> '{patch,0,path}' = '')::int, 0)
      FROM (SELECT name, ectosync.changes(name, version) AS c FROM holders) c
     WHERE c.name = h.name;
    INSERT INTO rounds
      SELECT i, array_agg(h.name ORDER BY h.name) FILTER (WHERE (h.val - 'seq') <> (regress.fresh(h.val) - 'seq')),
             array_agg(h.name ORDER BY h.name) FILTER (WHERE (h.copy - 'seq') <> (regress.fresh(h.val) - 'seq'))
      FROM holders h;
    COMMIT;
  END LOOP;
END $$;
SELECT count(*) AS rounds, count(*) FILTER (WHERE bad IS NOT NULL) AS rounds_with_differences,
       count(*) FILTER (WHERE bad_held IS NOT NULL) AS rounds_with_held_differences FROM rounds;
SELECT * FROM rounds WHERE bad IS NOT NULL OR bad_held IS NOT NULL ORDER BY n LIMIT 5;
-- the held copies were patched often, and never sent whole; in parts
SELECT h.name, h.version > 5 AS patched_often, whole_values, s.parts
  FROM holders h JOIN ectosync.held() s USING (name) ORDER BY name;

SELECT ectosync.unwatch('posts');
SELECT ectosync.unwatch('persons');
SELECT ectosync.unwatch('tags');
SELECT ectosync.unwatch('comments');
