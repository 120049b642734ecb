// holder.js: the ecto_sync holder loop in Node.js with the `pg` package.
//
//   const holder = new Holder({ table: 'posts', assocs: ['tags', { comments: ['author'] }] });
//   holder.on('change', (value) => render(value));
//   await holder.start();
//
// One dedicated pg.Client per holder (LISTEN needs a session of its own):
//   1. SELECT ectosync.subscribe(tbl, assocs)  -- LISTEN first...
//   2. value := ectosync.load(tbl, assocs, filter)  -- ...then load: nothing is missed
//   3. on each 'notification': value := ectosync.sync(value, payload)
//      SQLSTATE ZE001 ("the value must be reloaded"): load again
//   4. the connection ends: reconnect, subscribe, load (bounded retries)
'use strict';

const { EventEmitter } = require('node:events');
const { Client } = require('pg');

const RELOAD_SQLSTATE = 'ZE001';

class Holder extends EventEmitter {
  constructor({ table, assocs = [], filter = null, connection = {}, maxBatch = 16, reconnectMs = 30000 }) {
    super();
    this.table = table;
    this.assocs = JSON.stringify(assocs);
    this.filter = filter === null ? null : JSON.stringify(filter);
    this.connection = connection;
    this.maxBatch = maxBatch;
    this.reconnectMs = reconnectMs;
    this.value = null; // the jsonb value, parsed
    this.stats = { notifications: 0, syncs: 0, reloads: 0, reconnects: 0 };
    this.pending = [];
    this.busy = null; // the promise of the batch being synced
    this.ready = false; // subscribed and loaded on the current connection
    this.closed = false;
  }

  async start() {
    await this.connect();
  }

  async connect() {
    this.ready = false;
    this.client = new Client(this.connection);
    this.client.on('notification', (msg) => {
      this.stats.notifications++;
      this.pending.push(msg.payload);
      this.kick();
    });
    this.client.on('error', () => {}); // 'end' follows
    this.client.on('end', () => {
      if (!this.closed) this.reconnect();
    });
    await this.client.connect();
    await this.client.query('SELECT ectosync.subscribe($1::regclass, $2::jsonb)', [this.table, this.assocs]);
    this.pending = []; // the load below covers everything notified so far
    await this.load();
    this.ready = true; // notifications that came during the load: sync() skips what it holds
    this.kick();
  }

  async load() {
    const { rows } = await this.client.query(
      'SELECT ectosync.load($1::regclass, $2::jsonb, $3::jsonb) AS v',
      [this.table, this.assocs, this.filter],
    );
    this.value = rows[0].v;
    this.emit('change', this.value);
  }

  // Sync the pending notifications, in order, one batch per round trip.
  kick() {
    if (this.busy || !this.ready || this.pending.length === 0) return;
    this.busy = this.syncPending()
      .catch((err) => this.emit('error', err))
      .finally(() => {
        this.busy = null;
        this.kick();
        if (!this.busy && this.pending.length === 0) this.emit('idle');
      });
  }

  async syncPending() {
    while (this.pending.length > 0 && !this.closed) {
      // events the value already reflects (after a reload) need no round trip
      this.pending = this.pending.filter((payload) => !this.reflects(payload));
      if (this.pending.length === 0) break;
      const batch = this.pending.splice(0, this.maxBatch);
      let expr = '$1::jsonb';
      batch.forEach((_, i) => {
        expr = `ectosync.sync(${expr}, $${i + 2}::text)`;
      });
      try {
        const { rows } = await this.client.query(`SELECT ${expr} AS v`, [JSON.stringify(this.value), ...batch]);
        this.stats.syncs += batch.length;
        this.value = rows[0].v;
        this.emit('change', this.value);
      } catch (err) {
        if (err.code !== RELOAD_SQLSTATE) throw err;
        this.stats.reloads++;
        this.pending = [];
        await this.load();
      }
    }
  }

  // Is the payload's event already in the value (same epoch, seq <= value seq)?
  reflects(payload) {
    try {
      const [epoch, seq] = JSON.parse(payload).event.split(':');
      return epoch === this.value.epoch && Number(seq) <= Number(this.value.seq);
    } catch {
      return false;
    }
  }

  async reconnect() {
    const deadline = Date.now() + this.reconnectMs;
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        await this.connect();
        this.stats.reconnects++;
        this.stats.reloads++;
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          this.emit('error', new Error(`could not reconnect: ${err.message}`));
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500)));
      }
    }
  }

  // Resolves once every notification received so far has been synced.
  async settle() {
    while (this.busy) await this.busy;
  }

  // Does the held value equal a fresh load (ignoring "seq")?
  async matchesFreshLoad() {
    const { rows } = await this.client.query(
      "SELECT ($1::jsonb - 'seq') = (ectosync.load($2::regclass, $3::jsonb, $4::jsonb) - 'seq') AS same",
      [JSON.stringify(this.value), this.table, this.assocs, this.filter],
    );
    return rows[0].same;
  }

  async close() {
    this.closed = true;
    await this.settle();
    await this.client.end();
  }
}

module.exports = { Holder, RELOAD_SQLSTATE };
