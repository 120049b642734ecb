-- sync(): root rows enter and leave a filtered value as they start or stop
-- matching its filter (numbers compare numerically, text bytewise).
-- watch() may tell which triggers it replaces: not what is tested here
SET client_min_messages = warning;
CREATE TEMP TABLE holders (name text PRIMARY KEY, val jsonb NOT NULL);
CREATE FUNCTION pg_temp.step() RETURNS TABLE (holder text, same boolean, ids jsonb) LANGUAGE plpgsql AS $$
BEGIN
  UPDATE holders h SET val = regress.apply(h.val);
  RETURN QUERY SELECT h.name, (h.val - 'seq') = (regress.fresh(h.val) - 'seq'),
                      jsonb_path_query_array(h.val, '$.rows[*].id')
               FROM holders h ORDER BY h.name;
END $$;

CREATE TABLE notes (
  id numeric PRIMARY KEY,
  post_id int REFERENCES posts ON DELETE CASCADE,
  status text NOT NULL
);
INSERT INTO notes VALUES (1.5, 2, 'open'), (10, 2, 'open'), (2, NULL, 'closed');
SELECT ectosync.watch('posts', '["tags", "notes"]') IS NOT NULL AS watched;
SELECT ectosync.watch('notes', '["post"]') IS NOT NULL AS watched;
INSERT INTO holders VALUES
  ('posts by 2', ectosync.load('posts', '["tags", "notes"]', '{"author_id": 2}')),
  ('open notes', ectosync.load('notes', '["post"]', '{"status": "open"}')),
  ('notes of 2', ectosync.load('notes', '[]', '{"post_id": 2}'));
SELECT * FROM pg_temp.step();

-- rows start matching: updated into the filter, and inserted matching it
UPDATE posts SET author_id = 2 WHERE id = 3;
INSERT INTO posts VALUES (7, 2, 'Seventh');
INSERT INTO posts_tags VALUES (7, 2);
UPDATE notes SET status = 'open', post_id = 2 WHERE id = 2;
INSERT INTO notes VALUES (3.25, 7, 'open'), (0.5, 2, 'closed');
SELECT * FROM pg_temp.step();
SELECT jsonb_path_query_array(val, '$.rows[*].notes[*].id') FROM holders WHERE name = 'posts by 2';

-- rows stop matching, and matching rows are deleted (numeric keys: 10 > 3.25)
UPDATE posts SET author_id = NULL WHERE id = 7;
UPDATE notes SET status = 'closed' WHERE id = 1.5;
DELETE FROM notes WHERE id = 10;
SELECT * FROM pg_temp.step();

-- a numeric key rendered differently (2.0 = 2) is still the same row
UPDATE notes SET status = 'open' WHERE id = 2.0;
UPDATE notes SET status = 'closed' WHERE id = 2;
SELECT * FROM pg_temp.step();

SELECT ectosync.unwatch('posts');
SELECT ectosync.unwatch('notes');
DROP TABLE notes;
