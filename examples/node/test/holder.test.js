// node --test: a Holder follows random changes and ends equal to a fresh
// load; a RELOAD-worthy event (a terminated connection) is survived.
// Needs a server with ecto_sync preloaded, connection from PG*.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Client } = require('pg');
const { Holder } = require('../holder');

async function setup(admin) {
  await admin.query(`
    CREATE EXTENSION IF NOT EXISTS ecto_sync;
    DROP TABLE IF EXISTS nt_posts_tags, nt_posts, nt_tags;
    CREATE TABLE nt_tags (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE nt_posts (id bigint PRIMARY KEY, title text NOT NULL);
    CREATE TABLE nt_posts_tags (
      post_id bigint REFERENCES nt_posts ON DELETE CASCADE,
      tag_id bigint REFERENCES nt_tags ON DELETE CASCADE,
      PRIMARY KEY (post_id, tag_id));
    INSERT INTO nt_tags SELECT g, 'tag ' || g FROM generate_series(1, 10) g;
    INSERT INTO nt_posts SELECT g, 'post ' || g FROM generate_series(1, 50) g;`);
  const { rows } = await admin.query(
    "SELECT name FROM ectosync.associations('nt_posts') WHERE target = 'nt_tags'::regclass");
  await admin.query('SELECT ectosync.watch($1::regclass, $2::jsonb)', ['nt_posts', JSON.stringify([rows[0].name])]);
  return rows[0].name;
}

async function drained(admin, holder) {
  await admin.query('SELECT ectosync.wait_for_worker(10000)');
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    await holder.settle();
    if (await holder.matchesFreshLoad()) return true;
  }
  return false;
}

test('a holder follows changes and reconnects', async () => {
  const admin = new Client();
  await admin.connect();
  const tags = await setup(admin);
  const holder = new Holder({ table: 'nt_posts', assocs: [tags] });
  const errors = [];
  holder.on('error', (e) => errors.push(e));
  await holder.start();
  assert.strictEqual(holder.value.rows.length, 50);

  let seed = 12345;
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return 1 + (seed % n);
  };
  for (let i = 0; i < 300; i++) {
    const k = rand(5);
    if (k === 1) await admin.query('UPDATE nt_posts SET title = $1 WHERE id = $2', [`t${i}`, rand(60)]);
    if (k === 2) await admin.query('INSERT INTO nt_posts_tags SELECT $1::bigint, $2::bigint WHERE EXISTS (SELECT 1 FROM nt_posts WHERE id = $1) ON CONFLICT DO NOTHING', [rand(60), rand(10)]);
    if (k === 3) await admin.query('DELETE FROM nt_posts_tags WHERE post_id = $1', [rand(60)]);
    if (k === 4) await admin.query("UPDATE nt_tags SET name = 'tag ' || $1 WHERE id = $2", [i, rand(10)]);
    if (k === 5) await admin.query('INSERT INTO nt_posts VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title', [rand(60), `n${i}`]);
  }
  assert.ok(await drained(admin, holder), 'the held value differs from a fresh load');
  assert.ok(holder.stats.syncs > 0);

  // the holder's connection is terminated: it reconnects and reloads
  await admin.query('SELECT pg_terminate_backend($1)', [holder.client.processID]);
  for (let i = 0; i < 100 && holder.stats.reconnects === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.strictEqual(holder.stats.reconnects, 1);
  await admin.query("UPDATE nt_posts SET title = 'after reconnect' WHERE id = 1");
  assert.ok(await drained(admin, holder), 'no convergence after reconnecting');
  assert.deepStrictEqual(errors, []);
  await holder.close();
  await admin.end();
});

test('a RELOAD marker (bulk statement) makes the holder reload', async () => {
  const admin = new Client();
  await admin.connect();
  const tags = await setup(admin);
  const holder = new Holder({ table: 'nt_posts', assocs: [tags] });
  await holder.start();
  await admin.query('SET ectosync.max_xact_events = 5');
  await admin.query("UPDATE nt_posts SET title = title || ' (bulk)'");
  assert.ok(await drained(admin, holder), 'no convergence after the RELOAD marker');
  assert.ok(holder.stats.reloads >= 1, 'the holder did not reload');
  assert.ok(holder.value.rows.every((p) => p.title.endsWith(' (bulk)')));
  await holder.close();
  await admin.end();
});
