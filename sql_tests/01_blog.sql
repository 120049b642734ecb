-- The blog domain that the regression tests share: persons write posts and
-- comments, posts carry tags and labels, and a few odd tables exercise
-- schemas and quoting.  Later test files (in order: 10_*, 11_*, ...) add
-- rows or tables of their own and clean up after themselves.  The
-- extension normally exists already (00_extension.sql).
CREATE EXTENSION IF NOT EXISTS ecto_sync;

CREATE TABLE persons (
  id bigint PRIMARY KEY,
  name text NOT NULL
);

-- person_id is unique: a person has at most one profile (has_one).
CREATE TABLE profiles (
  id int PRIMARY KEY,
  person_id bigint NOT NULL UNIQUE REFERENCES persons ON DELETE CASCADE,
  bio text
);

CREATE TABLE posts (
  id int PRIMARY KEY,
  author_id bigint REFERENCES persons ON DELETE SET NULL,
  title text NOT NULL
);

CREATE TABLE comments (
  id int PRIMARY KEY,
  post_id int NOT NULL REFERENCES posts ON DELETE CASCADE,
  author_id bigint REFERENCES persons ON DELETE SET NULL,
  body text NOT NULL
);

CREATE TABLE tags (
  id int PRIMARY KEY,
  name text NOT NULL UNIQUE
);

-- A join table: exactly two foreign keys, and a primary key made of both.
CREATE TABLE posts_tags (
  post_id int REFERENCES posts ON DELETE CASCADE,
  tag_id int REFERENCES tags ON DELETE CASCADE,
  PRIMARY KEY (post_id, tag_id)
);

-- Text keys: uuid primary key.
CREATE TABLE labels (
  id uuid PRIMARY KEY,
  name text NOT NULL
);

CREATE TABLE posts_labels (
  post_id int REFERENCES posts ON DELETE CASCADE,
  label_id uuid REFERENCES labels ON DELETE CASCADE,
  PRIMARY KEY (post_id, label_id)
);

-- Another schema, and a primary key that is not called id.
CREATE SCHEMA audit;
CREATE TABLE audit.entries (
  entry_no bigint PRIMARY KEY,
  post_id int REFERENCES posts ON DELETE CASCADE,
  what text NOT NULL
);

-- Names that need quoting everywhere.
CREATE TABLE "Weird Table" (
  "Key Col" text PRIMARY KEY,
  "Col""Quote" text,
  post_id int REFERENCES posts ON DELETE CASCADE
);

INSERT INTO persons VALUES (1, 'Ada'), (2, 'Brian'), (3, 'Chloe');
INSERT INTO profiles VALUES (10, 1, 'Mathematician'), (11, 3, NULL);
INSERT INTO posts VALUES (1, 1, 'Engines'), (2, 2, 'Compilers'), (3, 1, 'Notes'), (4, NULL, 'Anonymous');
INSERT INTO comments VALUES
  (1, 1, 2, 'Great'), (2, 1, 3, 'Indeed'), (3, 2, 1, 'Nice'), (4, 3, NULL, 'Who?');
INSERT INTO tags VALUES (1, 'math'), (2, 'history'), (3, 'code');
INSERT INTO posts_tags VALUES (1, 1), (1, 2), (2, 3), (3, 1);
INSERT INTO labels VALUES
  ('b0000000-0000-0000-0000-000000000002', 'featured'),
  ('a0000000-0000-0000-0000-000000000001', 'draft');
INSERT INTO posts_labels VALUES
  (1, 'b0000000-0000-0000-0000-000000000002'),
  (1, 'a0000000-0000-0000-0000-000000000001'),
  (2, 'a0000000-0000-0000-0000-000000000001');
INSERT INTO audit.entries VALUES (100, 1, 'created'), (101, 1, 'edited'), (102, 2, 'created');
INSERT INTO "Weird Table" VALUES ('b', 'x"y', 1), ('a', NULL, 1), ('B', 'upper', 2);
