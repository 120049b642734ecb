// node --test: the Hub (many held values over one connection) against a real
// server: every value equals a fresh load after random writes, only the
// values a change concerns change, and a terminated connection is
// reconnected with every value held again.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Hub, HeldValue } = require('../hub');
const h = require('./helpers');

const DB = 'ectosync_node_hub';
const APP = 'ectosync node hub test';
const ctx = h.blogDatabase(test, DB);

async function hub(n) {
  const hb = new Hub({ connection: { database: DB, application_name: APP }, timeoutMs: 200 });
  hb.errors = [];
  hb.on('error', (e) => hb.errors.push(e));
  await hb.start();
  const values = [];
  // one value per post (with its tags), and one of every post
  for (let i = 1; i <= n; i++)
    values.push(await hb.hold(`post ${i}`, { table: 'posts', assocs: [ctx.tags], filter: { id: i } }));
  values.push(await hb.hold('all', { table: 'posts', assocs: [ctx.tags] }));
  return { hb, values };
}

// Waits until every value of the hub equals a fresh load (at most 10 s).
async function allConverged(hb) {
  await ctx.db.query('SELECT ectosync.wait_for_worker(10000)');
  for (let i = 0; i < 100; i++) {
    let same = true;
    for (const v of hb.values.values()) same = same && (await h.sameAsLoad(ctx.db, v));
    if (same) return true;
    await h.sleep(100);
  }
  return false;
}

test('hub: fifty values on one connection follow random writes', { timeout: 60000 }, async () => {
  const { hb, values } = await hub(50);
  try {
    const { rows } = await ctx.db.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2', [DB, APP]);
    assert.strictEqual(rows[0].n, 1, 'one session holds every value');
    await h.randomWrites(ctx.db, 200);
    assert.ok(await allConverged(hb), 'a value differs from a fresh load');
    assert.ok(values.some((v) => v.patches > 0), 'no value changed');
    assert.ok(values.some((v) => v.patches === 0), 'every value changed: the writes reach only some');
    assert.deepStrictEqual(hb.errors, []);
  } finally {
    await hb.close();
  }
});

test('hub: names of one shared value get its patch once, and each copy stays its own', { timeout: 60000 }, async () => {
  const hb = new Hub({ connection: { database: DB, application_name: APP }, timeoutMs: 200 });
  hb.errors = [];
  hb.on('error', (e) => hb.errors.push(e));
  await hb.start();
  try {
    // three screens showing the same list: one value on the server
    for (const name of ['screen 1', 'screen 2', 'screen 3'])
      await hb.hold(name, { table: 'posts', assocs: [ctx.tags] });
    await h.randomWrites(ctx.db, 200);
    assert.ok(await allConverged(hb), 'a value differs from a fresh load');
    // (a patch applied to one copy must not reach into another: tags added
    // to a post of one copy would be added twice to the others)
    assert.ok(hb.stats.patchesShared > 0, 'no row named another row as same_as');
    assert.deepStrictEqual(hb.errors, []);
  } finally {
    await hb.close();
  }
});

test('hub: a same_as row gets the patch as it was before any copy was patched', async () => {
  // Two versions of a shared value in one reply: a post added, then a tag
  // added inside it.  Applied to the first copy, the second operation
  // changes the post the first one put there (the patch's own object): a
  // copy of the patch taken after that would add the tag twice.
  const hb = new Hub();
  for (const name of ['screen 1', 'screen 2']) {
    const held = new HeldValue(hb, name, { table: 'posts' });
    held.value = { rows: [] };
    hb.values.set(name, held);
  }
  await hb.applyRows([
    { name: 'screen 1', version: 2, since_version: 0, error: null, same_as: null,
      patch: [{ op: 'add', path: '/rows/0', value: { id: 9, tags: [] } },
              { op: 'add', path: '/rows/0/tags/0', value: { id: 3 } }] },
    { name: 'screen 2', version: 2, since_version: 0, error: null, same_as: 'screen 1', patch: null },
  ]);
  const expected = { rows: [{ id: 9, tags: [{ id: 3 }] }] };
  assert.deepStrictEqual(hb.values.get('screen 1').value, expected);
  assert.deepStrictEqual(hb.values.get('screen 2').value, expected);
  assert.strictEqual(hb.values.get('screen 2').version, 2);
});

test('hub: a terminated connection is reconnected and every value held again', { timeout: 60000 }, async () => {
  const { hb } = await hub(10);
  try {
    await ctx.db.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
      [DB, APP]);
    await h.randomWrites(ctx.db, 100);
    assert.ok(await h.waitFor(() => hb.stats.reconnects === 1, 10000), 'the hub did not reconnect');
    assert.ok(await allConverged(hb), 'a value differs from a fresh load after the reconnect');
  } finally {
    await hb.close();
  }
});
