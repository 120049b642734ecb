// hub.js: many held values over one connection, with the `pg` package.
//
//   const hub = new Hub({ connection: { database: 'app' } });
//   await hub.start();
//   const mine = await hub.hold('user 42 posts', { table: 'posts', filter: { author_id: 42 } });
//   mine.on('change', (value) => render(value));
//
// An application process cannot open a connection per screen of each of its
// users.  A Hub keeps all its values on one session (held values need one:
// give the hub a dedicated connection; everything else can go through a
// pooler) and waits for all of them with one call:
//   ectosync.wait_changes(timeout_ms, patch_once => true) -> a row (name,
//   version, seq, patch) for each value that changed, as soon as one did;
//   each patch is applied to its value (patch.js), whose 'change' event then
//   fires.  Names of one value that the server shares get its patch once:
//   the others name that row in same_as.
// The connection ends: reconnect, hold every value again.
'use strict';

const { EventEmitter } = require('node:events');
const { Client } = require('pg');
const { applyPatch } = require('./patch');

// Errors of a connection that is going away (08: connection exception, 57P: terminated).
const connectionGone = (err) => /^(08|57P)/.test(err.code || '') || /terminat|Connection/i.test(err.message || '');

// One held value of a hub: its shape, its copy and the version it is.
class HeldValue extends EventEmitter {
  constructor(hub, name, { table, assocs = [], filter = null }) {
    super();
    this.hub = hub;
    this.name = name;
    this.table = table;
    this.assocs = JSON.stringify(assocs);
    this.filter = filter === null ? null : JSON.stringify(filter);
    this.value = null;
    this.version = 0;
    this.patches = 0;
  }

  apply(row) {
    this.version = Number(row.version);
    if (row.patch.length === 0) return;
    this.value = applyPatch(this.value, row.patch);
    this.patches++;
    this.emit('change', this.value);
  }
}

class Hub extends EventEmitter {
  constructor({ connection = {}, timeoutMs = 10000, reconnectMs = 30000 } = {}) {
    super();
    this.connection = connection;
    this.timeoutMs = timeoutMs;
    this.reconnectMs = reconnectMs;
    this.values = new Map(); // name -> HeldValue
    this.stats = { waits: 0, reconnects: 0, patchesShared: 0 };
    this.closed = false;
    this.client = null;
    this.waiting = null;
  }

  async start() {
    this.client = await this.connect();
    this.loop();
  }

  async connect() {
    const client = new Client(this.connection);
    client.on('error', () => {}); // 'end' reconnects
    await client.connect();
    return client;
  }

  // Holds a value on the hub's session: its copy is there when this returns.
  // (It queues behind the wait in progress: keep timeoutMs to seconds.)
  async hold(name, shape) {
    if (this.values.has(name)) throw new Error(`hub: a value is held as "${name}" already`);
    const held = new HeldValue(this, name, shape);
    this.values.set(name, held);
    await this.holdOn(this.client, held);
    return held;
  }

  async holdOn(client, held) {
    const { rows } = await client.query(
      'SELECT ectosync.hold($1, $2::regclass, $3::jsonb, $4::jsonb, listen => false) AS v',
      [held.name, held.table, held.assocs, held.filter],
    );
    held.value = rows[0].v;
    held.version = 0;
    held.emit('change', held.value);
  }

  async release(name) {
    if (!this.values.delete(name)) return false;
    await this.client.query('SELECT ectosync.release($1)', [name]);
    return true;
  }

  // Applies one reply of wait_changes() to the values it names.
  async applyRows(rows) {
    // A row whose patch is another's (same_as) gets a copy of it, made
    // before any is applied: applyPatch puts the patch's values into the
    // document, and a later operation of the same patch (two versions of
    // the value) may change them there.
    const byName = new Map(rows.map((row) => [row.name, row]));
    for (const row of rows)
      if (row.same_as !== null) {
        row.patch = structuredClone(byName.get(row.same_as).patch);
        this.stats.patchesShared++;
      }
    for (const row of rows) {
      const held = this.values.get(row.name);
      // a value whose changes failed (its role may no longer read a table of it)
      if (held && row.error !== null) {
        held.error = row.error;
        if (held.listenerCount('error') > 0) held.emit('error', new Error(row.error));
      } else if (held && Number(row.since_version) !== held.version) {
        // a reply went missing: from our version the server sends the whole value
        const { rows: [whole] } = await this.client.query(
          'SELECT ectosync.changes($1, $2) AS c', [held.name, held.version]);
        held.apply({ version: whole.c.version, patch: whole.c.patch });
      } else {
        held?.apply(row);
      }
    }
  }

  // One wait for every value at a time, until close().
  async loop() {
    while (!this.closed) {
      try {
        this.stats.waits++;
        this.waiting = this.client.query(
          'SELECT name, version, patch, error, since_version, same_as ' +
            'FROM ectosync.wait_changes($1, patch_once => true)',
          [this.timeoutMs]);
        const { rows } = await this.waiting;
        await this.applyRows(rows);
        this.emit('pumped', rows.length);
      } catch (err) {
        if (this.closed) return;
        if (!connectionGone(err)) {
          this.emit('error', err);
          continue;
        }
        await this.reconnect();
      }
    }
  }

  async reconnect() {
    const end = Date.now() + this.reconnectMs;
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        this.client = await this.connect();
        for (const held of this.values.values()) await this.holdOn(this.client, held);
        this.stats.reconnects++;
        return;
      } catch (err) {
        if (Date.now() > end) throw err;
        await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500)));
      }
    }
  }

  async close() {
    this.closed = true;
    await this.client?.end().catch(() => {});
  }
}

module.exports = { Hub, HeldValue };
