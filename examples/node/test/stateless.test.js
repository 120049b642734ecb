// node --test: the Holder in mode 'stateless' (subscribe, load, sync(value,
// payload) per notification, load again on ZE001) against a real server.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Holder } = require('../holder');
const h = require('./helpers');

const DB = 'ectosync_node_stateless';
const ctx = h.blogDatabase(test, DB); // ctx.db; ctx.tags: the name of posts' tags association

test('stateless: follows random writes and reconnects', { timeout: 30000 }, async () => {
  const hd = new Holder({ table: 'posts', assocs: [ctx.tags], mode: 'stateless', connection: { database: DB } });
  const errors = [];
  hd.on('error', (e) => errors.push(e));
  await hd.start();
  assert.strictEqual(hd.value.rows.length, 50);
  await h.randomWrites(ctx.db, 300);
  assert.ok(await h.converged(ctx.db, hd), 'the value differs from a fresh load');
  assert.ok(hd.stats.syncs > 0, 'nothing was synced');
  assert.strictEqual(hd.stats.holds, 0, 'stateless mode must not hold()');

  await ctx.db.query('SELECT pg_terminate_backend($1)', [hd.client.processID]);
  await ctx.db.query("UPDATE posts SET title = 'while away' WHERE id = 1");
  assert.ok(await h.waitFor(() => hd.stats.reconnects === 1), 'no reconnect');
  await ctx.db.query("UPDATE posts SET title = 'after reconnect' WHERE id = 2");
  assert.ok(await h.converged(ctx.db, hd), 'no convergence after reconnecting');
  assert.deepStrictEqual(hd.value.rows.slice(0, 2).map((p) => p.title), ['while away', 'after reconnect']);
  assert.deepStrictEqual(errors, []);
  await hd.close();
});

test('stateless: a RELOAD marker (ZE001) makes it load again', { timeout: 30000 }, async () => {
  const hd = new Holder({ table: 'posts', assocs: [ctx.tags], mode: 'stateless', connection: { database: DB } });
  await hd.start();
  await ctx.db.query('SET ectosync.max_xact_events = 5');
  await ctx.db.query("UPDATE posts SET title = title || ' (bulk)'");
  await ctx.db.query('RESET ectosync.max_xact_events');
  assert.ok(await h.converged(ctx.db, hd), 'no convergence after the RELOAD marker');
  assert.ok(hd.stats.reloads >= 1, 'the holder did not reload');
  assert.ok(hd.value.rows.every((p) => p.title.endsWith(' (bulk)')));
  await hd.close();
});
