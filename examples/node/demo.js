// demo.js: watch posts with their tags, hold the value, make a few changes
// from another connection and print what the holder sees.
// Run against a server with ecto_sync preloaded, connection from PG* (e.g.
// scripts/with-cluster.sh node examples/node/demo.js after `npm ci`).
// `node demo.js stateless` runs the stateless loop instead of hold()/changes().
'use strict';

const { Client } = require('pg');
const { Holder } = require('./holder');

async function main() {
  const admin = new Client();
  await admin.connect();
  await admin.query(`
    CREATE EXTENSION IF NOT EXISTS ecto_sync;
    DROP TABLE IF EXISTS node_posts_tags, node_posts, node_tags;
    CREATE TABLE node_tags (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE node_posts (id bigint PRIMARY KEY, title text NOT NULL);
    CREATE TABLE node_posts_tags (
      post_id bigint REFERENCES node_posts ON DELETE CASCADE,
      tag_id bigint REFERENCES node_tags ON DELETE CASCADE,
      PRIMARY KEY (post_id, tag_id));
    INSERT INTO node_tags VALUES (1, 'postgres'), (2, 'node');
    INSERT INTO node_posts VALUES (1, 'Hello'), (2, 'World');
    INSERT INTO node_posts_tags VALUES (1, 1);`);
  const { rows } = await admin.query(
    "SELECT name FROM ectosync.associations('node_posts') WHERE target = 'node_tags'::regclass");
  const tags = rows[0].name;
  await admin.query('SELECT ectosync.watch($1::regclass, $2::jsonb)', ['node_posts', JSON.stringify([tags])]);

  const holder = new Holder({ table: 'node_posts', assocs: [tags], mode: process.argv[2] || 'held' });
  holder.on('change', (v) => console.log('value', JSON.stringify(v.rows)));
  holder.on('error', (e) => console.error('holder error:', e.message));
  await holder.start();

  await admin.query("UPDATE node_posts SET title = 'Hello, ecto_sync' WHERE id = 1");
  await admin.query('INSERT INTO node_posts_tags VALUES (2, 2)');
  await admin.query("UPDATE node_tags SET name = 'PostgreSQL' WHERE id = 1");
  await admin.query('SELECT ectosync.wait_for_worker(10000)');
  await new Promise((r) => setTimeout(r, 300));
  await holder.settle();
  console.log('equal to a fresh load:', await holder.matchesFreshLoad(), holder.stats);
  await holder.close();
  await admin.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
