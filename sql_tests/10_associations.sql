-- ectosync.associations(tbl) lists what ectosync.watch() and load() can
-- follow from a table: every foreign key from it (belongs_to), to it
-- (has_many, or has_one when the referencing columns are unique), and
-- through join tables (many_to_many).  Names are derived from the catalog
-- (rules in src/core/assoc.hpp).

-- posts: its author, its comments, audit entries and weird rows, and tags
-- and labels through the join tables posts_tags and posts_labels.
SELECT * FROM ectosync.associations('posts');

-- persons: has_one profile (profiles.person_id is unique), has_many posts
-- and comments.
SELECT name, kind, target, owner_columns, target_columns FROM ectosync.associations('persons');

-- The other direction of the join tables, and belongs_to from comments.
SELECT name, kind, target, through FROM ectosync.associations('tags');
SELECT name, kind, target, through FROM ectosync.associations('labels');
SELECT name, kind, target FROM ectosync.associations('comments');
SELECT name, kind, target FROM ectosync.associations('profiles');

-- Join tables are tables too: each of their keys is a belongs_to.
SELECT name, kind, target FROM ectosync.associations('posts_tags');

-- Schemas and quoted names.
SELECT name, kind, target, owner_columns FROM ectosync.associations('audit.entries');
SELECT name, kind, target, owner_columns FROM ectosync.associations('"Weird Table"');

-- A table without foreign keys has no associations.
CREATE TABLE lonely (id int PRIMARY KEY);
SELECT count(*) FROM ectosync.associations('lonely');
DROP TABLE lonely;

-- An unknown table is the regclass input's error.
SELECT * FROM ectosync.associations('nope');

-- The shapes below live in their own schema, dropped at the end.
CREATE SCHEMA t10;
SET search_path = t10, public;

-- Composite keys: a belongs_to made of two columns is named after the
-- singular of the table it references.
CREATE TABLE orders (region text, no int, PRIMARY KEY (region, no));
CREATE TABLE order_lines (
  id int PRIMARY KEY,
  region text,
  order_no int,
  FOREIGN KEY (region, order_no) REFERENCES orders
);
SELECT * FROM ectosync.associations('order_lines');
SELECT name, kind, owner_columns, target_columns FROM ectosync.associations('orders');

-- Two foreign keys from one table to the same table: the belongs_to names
-- differ (author, editor), the has_many names on the other side get the
-- column names.  A name that is a column of the table (books.author) also
-- moves on: author_by_author_id.
CREATE TABLE people (id int PRIMARY KEY, name text);
CREATE TABLE books (
  id int PRIMARY KEY,
  author text,
  author_id int REFERENCES people,
  editor_id int REFERENCES people
);
SELECT name, kind, target, owner_columns FROM ectosync.associations('books');
SELECT name, kind, target, target_columns FROM ectosync.associations('people');

-- A join table from people to people: one association per direction,
-- named by the join table's column that points at the target.
CREATE TABLE follows (
  follower_id int REFERENCES people,
  followee_id int REFERENCES people,
  PRIMARY KEY (follower_id, followee_id)
);
SELECT name, kind, target, through, through_owner_columns, through_target_columns
  FROM ectosync.associations('people') WHERE kind = 'many_to_many';

-- A table with two foreign keys is a join table only when a unique key is
-- made of exactly their columns; with a surrogate key alone it is a table
-- of its own (has_many).
CREATE TABLE reading (
  id int PRIMARY KEY,
  person_id int REFERENCES people,
  book_id int REFERENCES books
);
SELECT name, kind, target, through FROM ectosync.associations('books') WHERE kind <> 'belongs_to';
CREATE UNIQUE INDEX ON reading (book_id, person_id);
SELECT name, kind, target, through FROM ectosync.associations('books') WHERE kind <> 'belongs_to';

-- Unique referencing columns make has_one.
CREATE TABLE covers (id int PRIMARY KEY, book_id int UNIQUE REFERENCES books);
SELECT name, kind FROM ectosync.associations('books') WHERE name LIKE 'cover%';

-- A foreign key to its own table: both ends.
CREATE TABLE nodes (id int PRIMARY KEY, parent_id int REFERENCES nodes);
SELECT name, kind, target, owner_columns, target_columns FROM ectosync.associations('nodes');

-- Views and other relations have no associations.
CREATE VIEW people_view AS SELECT * FROM people;
SELECT * FROM ectosync.associations('people_view');

RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA t10 CASCADE;
RESET client_min_messages;
