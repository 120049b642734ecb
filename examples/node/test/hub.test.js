// node --test: the Hub (many held values over one connection) against a real
// server: every value equals a fresh load after random writes, only the
// values a change concerns change, and a terminated connection is
// reconnected with every value held again; and the faults: a patch that
// fails halfway, a listener that throws, a hold() refused, a reply of a
// released name, a reconnect refused and a value that cannot be held again.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Client } = require('pg');
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

// The server's version of a value the hub holds (asked on the hub's own
// session, where the value is held: it queues behind the wait).
async function serverVersion(hb, name) {
  const { rows } = await hb.client.query('SELECT version FROM ectosync.held() WHERE name = $1', [name]);
  return Number(rows[0].version);
}

test('hub: a patch that does not apply fetches the whole value, never leaving a half-patched one', { timeout: 30000 }, async () => {
  const { hb, values: [, , all] } = await hub(2);
  try {
    const seen = [];
    all.on('change', (v) => seen.push(v.rows.length));
    // Our copy drifts from the server's (only posts 1 and 2 left): the patch
    // of the update below (/rows/0/title, /rows/2/title) fails halfway, and
    // the value must not keep its first operation at the new version.
    all.value.rows.length = 2;
    await ctx.db.query("UPDATE posts SET title = title || ' (both)' WHERE id IN (1, 3)");
    assert.ok(await allConverged(hb), 'a value differs from a fresh load');
    assert.ok(hb.stats.refetches >= 1, 'the whole value was not fetched');
    assert.strictEqual(all.version, await serverVersion(hb, 'all'));
    assert.deepStrictEqual(seen, [50], 'a listener saw a value other than the whole one');
    assert.deepStrictEqual(hb.errors, []);
  } finally {
    await hb.close();
  }
});

test('hub: a listener that throws stops neither the other rows, nor other listeners, nor the loop', { timeout: 30000 }, async () => {
  // No 'error' listener on the hub: its errors go to console.error.
  const hb = new Hub({ connection: { database: DB, application_name: APP }, timeoutMs: 200 });
  const logged = [];
  const consoleError = console.error;
  console.error = (...args) => logged.push(args);
  try {
    await hb.start();
    const titles = {};
    for (const id of [1, 2]) {
      const v = await hb.hold(`post ${id}`, { table: 'posts', filter: { id } });
      // (it names a "Connection": an application's error all the same)
      v.on('change', () => { throw new Error('Connection to the screen terminated'); });
      v.on('change', (value) => { titles[id] = value.rows[0].title; });
    }
    // one statement, one reply with both rows
    await ctx.db.query("UPDATE posts SET title = 'changed ' || id WHERE id IN (1, 2)");
    assert.ok(await h.waitFor(() => titles[1] === 'changed 1' && titles[2] === 'changed 2'),
      `a row or a listener was left out: ${JSON.stringify(titles)}`);
    await ctx.db.query("UPDATE posts SET title = 'again' WHERE id = 2");
    assert.ok(await h.waitFor(() => titles[2] === 'again'), 'the hub stopped');
    assert.ok(await allConverged(hb), 'a value differs from a fresh load');
    assert.strictEqual(hb.stats.reconnects, 0, "a listener's error made the hub reconnect");
    assert.ok(logged.length >= 3 && logged.every(([, err]) => err.message === 'Connection to the screen terminated'),
      `listener errors not reported: ${JSON.stringify(logged)}`);
  } finally {
    console.error = consoleError;
    await hb.close();
  }
});

test('hub: a hold() that fails leaves the name free', { timeout: 30000 }, async () => {
  const { hb } = await hub(1);
  try {
    await assert.rejects(hb.hold('mine', { table: 'postz' }), /postz/);
    assert.strictEqual(hb.values.has('mine'), false);
    const mine = await hb.hold('mine', { table: 'posts', filter: { id: 3 } });
    assert.strictEqual(mine.value.rows.length, 1);
    assert.deepStrictEqual(hb.errors, []);
  } finally {
    await hb.close();
  }
});

test('hub: a reply of a value released while it was on its way does not reach the value held again', { timeout: 30000 }, async () => {
  // A wait long enough for the update below to end it.
  const hb = new Hub({ connection: { database: DB, application_name: APP }, timeoutMs: 1000 });
  hb.errors = [];
  hb.on('error', (e) => hb.errors.push(e));
  await hb.start();
  try {
    // Two names of one value (the server shares it): their rows come in one
    // reply, 'a' first.  a's copy has drifted, so its row waits for the
    // whole value, and x's row comes after x is held again.
    const a = await hb.hold('a', { table: 'posts' });
    await hb.hold('x', { table: 'posts' });
    a.value.rows = [];
    // released and held again (another filter) while the wait is under way
    const released = hb.release('x');
    const heldAgain = hb.hold('x', { table: 'posts', filter: { id: 2 } });
    await ctx.db.query("UPDATE posts SET title = 'for the old x' WHERE id = 1");
    await released;
    const x = await heldAgain;
    const seen = [];
    x.on('change', (v) => seen.push(v.rows[0].title));
    assert.ok(await allConverged(hb), 'a value differs from a fresh load');
    assert.deepStrictEqual(x.value.rows.map((p) => p.title), ['post 2']);
    assert.strictEqual(x.version, await serverVersion(hb, 'x'));
    assert.deepStrictEqual(seen, []);
    assert.deepStrictEqual(hb.errors, []);
  } finally {
    await hb.close();
  }
});

// (last: should it fail, connections to the database may stay disallowed)
test('hub: a reconnect retries while connections fail, and skips a value it cannot hold again', { timeout: 60000 }, async () => {
  await ctx.db.query(`DROP TABLE IF EXISTS extra;
    CREATE TABLE extra (id bigint PRIMARY KEY, x text);
    INSERT INTO extra VALUES (1, 'x');
    SELECT ectosync.watch('extra');`);
  const hb = new Hub({ connection: { database: DB, application_name: APP }, timeoutMs: 200, reconnectMs: 300 });
  hb.errors = [];
  hb.on('error', (e) => hb.errors.push(e));
  await hb.start();
  const admin = new Client(); // (a database's connections are allowed or not from another one)
  await admin.connect();
  try {
    await hb.hold('extra value', { table: 'extra' });
    for (const id of [1, 2]) await hb.hold(`post ${id}`, { table: 'posts', filter: { id } });
    // The connection ends, and no new one is accepted for a while; the
    // table of one value is dropped meanwhile.
    await admin.query(`ALTER DATABASE ${DB} ALLOW_CONNECTIONS false`);
    try {
      await ctx.db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
        [DB, APP]);
      await ctx.db.query('DROP TABLE extra');
      await ctx.db.query("UPDATE posts SET title = 'while away' WHERE id IN (1, 2)");
      assert.ok(await h.waitFor(() => hb.errors.some((e) => /could not reconnect/.test(e.message))),
        'no error said the hub could not reconnect');
    } finally {
      await admin.query(`ALTER DATABASE ${DB} ALLOW_CONNECTIONS true`);
    }
    assert.ok(await h.waitFor(() => hb.stats.reconnects === 1, 10000), 'the hub did not reconnect');
    assert.deepStrictEqual([...hb.values.keys()], ['post 1', 'post 2']);
    assert.ok(hb.errors.some((e) => e.held === 'extra value' && /extra value/.test(e.message)),
      'the value that could not be held again was not reported');
    assert.ok(await allConverged(hb), 'a value differs from a fresh load after the reconnect');
    const { rows } = await ctx.db.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2', [DB, APP]);
    assert.strictEqual(rows[0].n, 1, 'sessions of failed attempts were left open');
  } finally {
    await admin.end();
    await hb.close();
  }
});
