// node --test: the Holder in its default mode (hold() once, changes() on
// each notification, JSON Patch applied locally) against a real server:
// its copy equals a fresh load after writes, a filtered holder is woken only
// by its own rows, it survives a terminated connection, a patch that does
// not apply, and a server-side reload.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Holder } = require('../holder');
const h = require('./helpers');

const DB = 'ectosync_node_held';
const ctx = h.blogDatabase(test, DB); // ctx.db; ctx.tags: the name of posts' tags association

// A started holder that records its errors and 'change' events.
async function holder(opts = {}) {
  const hd = new Holder({ table: 'posts', assocs: [ctx.tags], connection: { database: DB }, ...opts });
  hd.errors = [];
  hd.changes = 0;
  hd.on('error', (e) => hd.errors.push(e));
  hd.on('change', () => hd.changes++);
  await hd.start();
  return hd;
}

test('held: follows random writes and equals a fresh load', { timeout: 30000 }, async () => {
  const hd = await holder();
  assert.strictEqual(hd.mode, 'held');
  assert.strictEqual(hd.value.rows.length, 50);
  assert.ok(await h.sameAsLoad(ctx.db, hd));
  await h.randomWrites(ctx.db, 300);
  assert.ok(await h.converged(ctx.db, hd), 'the held value differs from a fresh load');
  assert.strictEqual(hd.stats.holds, 1, 'it held once');
  assert.ok(hd.stats.patches > 0, 'no patch was applied');
  assert.strictEqual(hd.stats.reloads, 0, 'no event should have made the server reload');
  // every non-empty patch moves the server's version by one, and makes one 'change'
  assert.strictEqual(hd.version, hd.stats.patches);
  assert.strictEqual(hd.changes, 1 + hd.stats.patches);
  const { rows } = await ctx.db.query('SELECT count(*)::int AS n FROM posts');
  assert.strictEqual(hd.value.rows.length, rows[0].n);
  assert.deepStrictEqual(hd.errors, []);
  await hd.close();
});

test('held: a filtered holder is not woken by rows outside its filter', { timeout: 30000 }, async () => {
  const mine = await holder({ filter: { id: 1 }, name: 'post 1' }); // post 1, tags 2 and 3
  const all = await holder();
  await h.converged(ctx.db, mine);
  await h.converged(ctx.db, all);
  // hold() notifies itself once, at commit; that costs one changes() call
  assert.strictEqual(mine.stats.notifications, 1);
  assert.strictEqual(mine.stats.calls, 1);
  const allBefore = all.stats.notifications;

  await ctx.db.query("UPDATE posts SET title = 'other' WHERE id BETWEEN 2 AND 50");
  await ctx.db.query('INSERT INTO posts_tags VALUES (2, 5), (30, 6)');
  await ctx.db.query('DELETE FROM posts_tags WHERE post_id = 4');
  await ctx.db.query("UPDATE tags SET name = 'not on post 1' WHERE id IN (1, 5, 9)");
  await ctx.db.query("INSERT INTO posts VALUES (51, 'new')");
  await ctx.db.query('DELETE FROM posts WHERE id = 50');
  await ctx.db.query('SELECT ectosync.wait_for_worker(10000)');
  // then one change of its own; notifications arrive in commit order, so once
  // it is synced any notification of the writes above has arrived too
  await ctx.db.query("UPDATE posts SET title = 'mine' WHERE id = 1");
  assert.ok(await h.converged(ctx.db, mine));
  assert.ok(await h.converged(ctx.db, all));
  assert.strictEqual(mine.value.rows.length, 1);
  assert.strictEqual(mine.value.rows[0].title, 'mine');
  assert.strictEqual(mine.stats.notifications, 2, 'woken by rows outside its filter');
  assert.strictEqual(mine.stats.calls, 2);
  assert.strictEqual(mine.stats.patches, 1);
  // the same writes did wake a holder of all posts
  assert.ok(all.stats.notifications - allBefore >= 2, `unfiltered: ${all.stats.notifications - allBefore} notifications`);
  assert.deepStrictEqual([...mine.errors, ...all.errors], []);
  await mine.close();
  await all.close();
});

test('held: a notification the last reply covers needs no call; an empty patch makes no change', { timeout: 30000 }, async () => {
  const hd = await holder();
  await ctx.db.query("UPDATE posts SET title = 'x' WHERE id = 1");
  assert.ok(await h.converged(ctx.db, hd));
  const { rows } = await hd.client.query('SELECT channel FROM ectosync.held() WHERE name = $1', [hd.name]);
  // notifications forged on the value's channel, as the worker words them
  const notify = (seq, epoch = hd.value.epoch) =>
    ctx.db.query('SELECT pg_notify($1, $2)', [rows[0].channel, JSON.stringify({ event: `${epoch}:${seq}` })]);
  const { calls, skipped } = hd.stats;
  const { changes, version } = hd;
  await notify(hd.seq);
  await notify(hd.seq - 1);
  assert.ok(await h.waitFor(() => hd.stats.skipped === skipped + 2), 'covered events not skipped');
  assert.strictEqual(hd.stats.calls, calls);
  // an event beyond the reply (never reached here) and another epoch: one call
  // each, which finds nothing to change
  await notify(hd.seq + 1000);
  assert.ok(await h.waitFor(() => hd.stats.calls === calls + 1 && !hd.busy));
  await notify(hd.seq, 'another-epoch');
  assert.ok(await h.waitFor(() => hd.stats.calls === calls + 2 && !hd.busy));
  await h.sleep(100); // no further calls follow
  assert.strictEqual(hd.stats.calls, calls + 2);
  assert.strictEqual(hd.changes, changes);
  assert.strictEqual(hd.version, version);
  assert.deepStrictEqual(hd.errors, []);
  await hd.close();
});

test('held: reconnects after pg_terminate_backend and holds again', { timeout: 30000 }, async () => {
  const hd = await holder();
  await ctx.db.query("UPDATE posts SET title = 'before' WHERE id = 1");
  assert.ok(await h.converged(ctx.db, hd));
  const pid = hd.client.processID;
  await ctx.db.query('SELECT pg_terminate_backend($1)', [pid]);
  // written while the holder is away: the new hold() must bring it
  await ctx.db.query("UPDATE posts SET title = 'while away' WHERE id = 2");
  assert.ok(await h.waitFor(() => hd.stats.reconnects === 1), 'no reconnect');
  assert.notStrictEqual(hd.client.processID, pid);
  assert.strictEqual(hd.stats.holds, 2);
  await ctx.db.query("UPDATE posts SET title = 'after' WHERE id = 3");
  assert.ok(await h.converged(ctx.db, hd), 'no convergence after reconnecting');
  assert.deepStrictEqual(hd.value.rows.slice(0, 3).map((p) => p.title), ['before', 'while away', 'after']);
  assert.deepStrictEqual(hd.errors, []);
  await hd.close();
});

test('held: a patch that does not apply makes it hold again', { timeout: 30000 }, async () => {
  const hd = await holder();
  assert.ok(await h.converged(ctx.db, hd));
  hd.value.rows.length = 10; // the local copy drifts from the server's
  await ctx.db.query("UPDATE posts SET title = 'beyond' WHERE id = 40"); // a patch at /rows/39
  assert.ok(await h.converged(ctx.db, hd), 'no convergence after the failed patch');
  assert.strictEqual(hd.stats.holds, 2, 'it did not hold again');
  assert.strictEqual(hd.value.rows[39].title, 'beyond');
  assert.deepStrictEqual(hd.errors, []);
  await hd.close();
});

test('held: a RELOAD marker (bulk statement) replaces the whole value', { timeout: 30000 }, async () => {
  const hd = await holder();
  assert.ok(await h.converged(ctx.db, hd));
  await ctx.db.query('SET ectosync.max_xact_events = 5');
  await ctx.db.query("UPDATE posts SET title = title || ' (bulk)'");
  await ctx.db.query('RESET ectosync.max_xact_events');
  assert.ok(await h.converged(ctx.db, hd), 'no convergence after the RELOAD marker');
  assert.ok(hd.stats.reloads >= 1, 'the server did not send the whole value');
  assert.strictEqual(hd.stats.holds, 1, 'a reload needs no new hold()');
  assert.ok(hd.value.rows.every((p) => p.title.endsWith(' (bulk)')));
  assert.deepStrictEqual(hd.errors, []);
  await hd.close();
});

test('held: a call that failed is made again, with no notification to bring it back', { timeout: 30000 }, async () => {
  await ctx.db.query('DROP ROLE IF EXISTS node_held_reader');
  await ctx.db.query('CREATE ROLE node_held_reader LOGIN');
  await ctx.db.query('GRANT SELECT ON posts, tags, posts_tags TO node_held_reader');
  const hd = await holder({ connection: { database: DB, user: 'node_held_reader' }, name: 'reader' });
  assert.ok(await h.converged(ctx.db, hd));
  // its changes() fails while it may not read posts (42501) ...
  await ctx.db.query('REVOKE SELECT ON posts FROM node_held_reader');
  await ctx.db.query("UPDATE posts SET title = 'while revoked' WHERE id = 1");
  await ctx.db.query('SELECT ectosync.wait_for_worker(10000)');
  assert.ok(await h.waitFor(() => hd.errors.some((e) => e.code === '42501')), 'the call did not fail');
  // ... and once it may again, with no write and no notification since,
  // the call made again brings the change
  await ctx.db.query('GRANT SELECT ON posts TO node_held_reader');
  const post1 = () => hd.value.rows.find((r) => Number(r.id) === 1);
  assert.ok(await h.waitFor(() => post1().title === 'while revoked', 10000), 'the change never came');
  assert.ok(await h.sameAsLoad(ctx.db, hd));
  await hd.close();
  await ctx.db.query('DROP OWNED BY node_held_reader');
  await ctx.db.query('DROP ROLE node_held_reader');
});
