// helpers.js: a database of the test file's own (test files run in parallel
// processes), with ecto_sync and a blog of posts and tags, watched.
// Connection from the PG* environment variables (scripts/with-cluster.sh).
'use strict';

const { Client } = require('pg');

async function freshDatabase(database) {
  const admin = new Client();
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${database}`);
  } finally {
    await admin.end();
  }
  const db = new Client({ database });
  await db.connect();
  await db.query('CREATE EXTENSION IF NOT EXISTS ecto_sync');
  return db;
}

async function dropDatabase(database) {
  const admin = new Client();
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
}

// 50 posts, 10 tags, post p has tags p % 10 + 1 and (p + 1) % 10 + 1 for p <= 20;
// returns the name of the posts -> tags association.
async function blog(db) {
  await db.query(`
    DROP TABLE IF EXISTS posts_tags, posts, tags;
    CREATE TABLE tags (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL);
    CREATE TABLE posts_tags (
      post_id bigint REFERENCES posts ON DELETE CASCADE,
      tag_id bigint REFERENCES tags ON DELETE CASCADE,
      PRIMARY KEY (post_id, tag_id));
    INSERT INTO tags SELECT g, 'tag ' || g FROM generate_series(1, 10) g;
    INSERT INTO posts SELECT g, 'post ' || g FROM generate_series(1, 50) g;
    INSERT INTO posts_tags SELECT p, t FROM generate_series(1, 20) p,
      LATERAL (VALUES (p % 10 + 1), ((p + 1) % 10 + 1)) v(t);`);
  const { rows } = await db.query(
    "SELECT name FROM ectosync.associations('posts') WHERE target = 'tags'::regclass");
  await db.query("SELECT ectosync.watch('posts', $1::jsonb)", [JSON.stringify([rows[0].name])]);
  return rows[0].name;
}

// Random writes over posts, posts_tags and tags (a fixed seed: the same run every time).
async function randomWrites(db, count, seed = 12345) {
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return 1 + (seed % n);
  };
  for (let i = 0; i < count; i++) {
    const k = rand(5);
    if (k === 1) await db.query('UPDATE posts SET title = $1 WHERE id = $2', [`t${i}`, rand(60)]);
    if (k === 2) await db.query('INSERT INTO posts_tags SELECT $1::bigint, $2::bigint WHERE EXISTS (SELECT 1 FROM posts WHERE id = $1) ON CONFLICT DO NOTHING', [rand(60), rand(10)]);
    if (k === 3) await db.query('DELETE FROM posts_tags WHERE post_id = $1', [rand(60)]);
    if (k === 4) await db.query("UPDATE tags SET name = 'tag ' || $1 WHERE id = $2", [i, rand(10)]);
    if (k === 5) await db.query('INSERT INTO posts VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title', [rand(60), `n${i}`]);
  }
}

// Does the holder's copy equal a fresh load, compared by the server (jsonb equality)?
async function sameAsLoad(db, holder) {
  const { rows } = await db.query(
    "SELECT ($1::jsonb - 'seq' - 'seal') = (ectosync.load($2::regclass, $3::jsonb, $4::jsonb) - 'seq' - 'seal') AS same",
    [JSON.stringify(holder.value), holder.table, holder.assocs, holder.filter],
  );
  return rows[0].same;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Waits until the worker has notified every event so far and the holder,
// woken by those notifications alone, equals a fresh load (at most 5 s).
async function converged(db, holder) {
  await db.query('SELECT ectosync.wait_for_worker(10000)');
  for (let i = 0; i < 50; i++) {
    await holder.settle();
    if (holder.ready && !holder.busy && (await sameAsLoad(db, holder))) return true;
    await sleep(100);
  }
  return false;
}

async function waitFor(cond, ms = 5000) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (cond()) return true;
  return cond();
}

// The hooks of a test file: its own database (created before the tests,
// dropped after) and a fresh blog before each test.  Returns { db, tags },
// filled in by the hooks.
function blogDatabase(test, database) {
  const ctx = { db: null, tags: null };
  test.before(async () => {
    ctx.db = await freshDatabase(database);
  });
  test.after(async () => {
    await ctx.db.end();
    await dropDatabase(database);
  });
  test.beforeEach(async () => {
    ctx.tags = await blog(ctx.db);
  });
  return ctx;
}

module.exports = { freshDatabase, blogDatabase, dropDatabase, blog, randomWrites, sameAsLoad, converged, waitFor, sleep };
