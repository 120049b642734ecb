// holder.js: the ecto_sync holder loop in Node.js with the `pg` package.
//
//   const holder = new Holder({ table: 'posts', assocs: ['tags', { comments: ['author'] }] });
//   holder.on('change', (value) => render(value));
//   await holder.start();
//
// One dedicated pg.Client per holder (LISTEN and held values live in the
// session).  Two modes, both documented ways of using ecto_sync:
//
// mode 'held' (the default): the server keeps the value and sends patches.
//   1. value := ectosync.hold(name, tbl, assocs, filter)   -- version 0; LISTENs
//   2. on any notification: ectosync.changes(name, version) -> {version, seq, patch};
//      apply the JSON Patch (patch.js); an empty patch: nothing changed
//   3. a patch that does not apply: hold again; the connection ends: reconnect, hold again
//
// mode 'stateless': the client sends its value, the server returns it synced.
//   1. SELECT ectosync.subscribe(tbl, assocs)  -- LISTEN first...
//   2. value := ectosync.load(tbl, assocs, filter)  -- ...then load: nothing is missed
//   3. on each 'notification': value := ectosync.sync(value, payload)
//      SQLSTATE ZE001 ("the value must be reloaded"): load again
//   4. the connection ends: reconnect, subscribe, load
//
// Numbers: pg parses jsonb with JSON.parse, so numbers are JS doubles.  Keys
// (bigint ids) beyond 2^53 would lose digits; they would need a big-number
// JSON parser (pg.types.setTypeParser(3802, ...)).  Under row level security
// a stateless value carries a seal over its digits: one lost makes every
// sync() a reload (ZE001).  The event seqs compared below stay far below 2^53.
'use strict';

const { EventEmitter } = require('node:events');
const { Client } = require('pg');
const { applyPatch, PatchError } = require('./patch');

const RELOAD_SQLSTATE = 'ZE001';

// Errors of a connection that is going away: its 'end' reconnects, so they
// are not the holder's errors (08: connection exception, 57P: terminated).
const connectionGone = (err) => /^(08|57P)/.test(err.code || '');

// '{"event": "<epoch>:<seq>", ...}' -> { epoch, seq }, or null ("{}": hold's own notification).
function eventOf(payload) {
  try {
    const [epoch, seq] = JSON.parse(payload).event.split(':');
    return { epoch, seq: Number(seq) };
  } catch {
    return null;
  }
}

class Holder extends EventEmitter {
  constructor({ table, assocs = [], filter = null, mode = 'held', name = `node:${table}`,
                connection = {}, maxBatch = 16, reconnectMs = 30000 }) {
    super();
    if (mode !== 'held' && mode !== 'stateless') throw new Error(`unknown mode ${mode}`);
    this.table = table;
    this.assocs = JSON.stringify(assocs);
    this.filter = filter === null ? null : JSON.stringify(filter);
    this.mode = mode;
    this.name = name; // of the held value in the session
    this.connection = connection;
    this.maxBatch = maxBatch;
    this.reconnectMs = reconnectMs;
    this.retryTimer = null; // a failed call's retry (kick())
    this.retryMs = 0;
    this.value = null; // the jsonb value, parsed
    this.version = 0; // held: the server's version of this copy
    this.seq = 0; // held: events up to it are in the value (the last reply's "seq")
    this.dirty = false; // held: a notification the last reply may not cover
    this.wanted = 0; // held: the highest event notified since the call under way began
    this.pending = []; // stateless: payloads to sync, in order
    this.stats = { notifications: 0, skipped: 0, calls: 0, patches: 0, syncs: 0,
                   holds: 0, reloads: 0, reconnects: 0 };
    this.client = null;
    this.busy = null; // the promise of the round trips under way
    this.ready = false; // held (or subscribed and loaded) on the current connection
    this.reconnecting = false;
    this.closed = false;
  }

  async start() {
    await this.connect();
  }

  async connect() {
    this.ready = false;
    const client = new Client(this.connection);
    this.client = client;
    client.on('notification', (msg) => this.notified(msg.payload));
    client.on('error', () => {}); // 'end' follows
    client.on('end', () => {
      if (this.client !== client) return; // an older connection, or a failed attempt of reconnect()
      this.client = null; // round trips under way drop their results
      if (!this.closed && !this.reconnecting) this.reconnect();
    });
    try {
      await client.connect();
      if (this.mode === 'held') {
        await this.hold();
      } else {
        await client.query('SELECT ectosync.subscribe($1::regclass, $2::jsonb)', [this.table, this.assocs]);
        this.pending = []; // the load below covers everything notified so far
        await this.load();
      }
    } catch (err) {
      if (this.client === client) this.client = null; // its 'end' must not start a retry loop
      client.end().catch(() => {});
      throw err;
    }
    this.ready = true; // what was notified meanwhile is still to do (sync() skips what the value holds)
    this.kick();
  }

  notified(payload) {
    this.stats.notifications++;
    if (this.mode === 'stateless') {
      this.pending.push(payload);
    } else {
      const ev = eventOf(payload);
      const known = ev !== null && this.value !== null && ev.epoch === this.value.epoch;
      // the last reply already reflects it: no round trip
      if (known && ev.seq <= this.seq) return void this.stats.skipped++;
      this.dirty = true;
      this.wanted = known ? Math.max(this.wanted, ev.seq) : Infinity;
    }
    this.kick();
  }

  // held: (re)load the value into the session.  hold() notifies itself at
  // commit, which arrives before the query resolves and sets dirty: the
  // changes() call it causes covers events committed before its LISTEN.
  async hold() {
    this.dirty = false;
    this.wanted = 0;
    const { rows } = await this.client.query(
      'SELECT ectosync.hold($1, $2::regclass, $3::jsonb, $4::jsonb) AS v',
      [this.name, this.table, this.assocs, this.filter],
    );
    this.stats.holds++;
    this.value = rows[0].v;
    this.version = 0;
    this.seq = Number(this.value.seq);
    this.emit('change', this.value);
  }

  async load() {
    const { rows } = await this.client.query(
      'SELECT ectosync.load($1::regclass, $2::jsonb, $3::jsonb) AS v',
      [this.table, this.assocs, this.filter],
    );
    this.value = rows[0].v;
    this.emit('change', this.value);
  }

  // One round-trip loop at a time, in order.
  // A call that failed (a lock timeout, a privilege revoked for a while)
  // left its work to do: it is tried again after a pause that doubles up to
  // 2 s, for no notification may come to bring it back.
  kick() {
    if (this.busy || this.retryTimer || !this.ready || !this.client || !this.hasWork()) return;
    const client = this.client;
    let failed = false;
    this.busy = (this.mode === 'held' ? this.fetchChanges(client) : this.syncPending(client))
      .catch((err) => {
        if (client !== this.client || connectionGone(err)) return;
        failed = true;
        if (this.listenerCount('error') > 0) this.emit('error', err);
      })
      .finally(() => {
        this.busy = null;
        if (failed && !this.closed) {
          this.retryMs = Math.min(2000, (this.retryMs || 25) * 2);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            this.kick();
          }, this.retryMs);
          return;
        }
        this.retryMs = 0;
        this.kick();
        if (!this.busy) this.emit('idle');
      });
  }

  hasWork() {
    return this.mode === 'held' ? this.dirty : this.pending.length > 0;
  }

  async fetchChanges(client) {
    while (client === this.client && !this.closed && this.hasWork()) {
      this.dirty = false; // notifications during the call set it again...
      this.wanted = 0;
      let rows;
      try {
        ({ rows } = await client.query('SELECT ectosync.changes($1, $2) AS c', [this.name, this.version]));
      } catch (err) {
        this.dirty = true; // (what it would have brought is still to fetch)
        throw err;
      }
      if (client !== this.client) return; // reconnected meanwhile: the new hold() rules
      this.stats.calls++;
      const { version, seq, patch } = rows[0].c;
      this.seq = Number(seq);
      // ...unless the reply covers them.  A call that began after a notification
      // covers it, so this loop ends even if a payload names a seq never reached.
      if (this.wanted <= this.seq) this.dirty = false;
      if (patch.length === 0) continue; // nothing changed: no 'change'
      if (patch.some((op) => op.path === '')) this.stats.reloads++; // the server reloaded it
      try {
        this.value = applyPatch(this.value, patch);
      } catch (err) {
        if (!(err instanceof PatchError)) throw err;
        // our copy is not the server's (half patched now): start over
        await this.hold();
        continue;
      }
      this.version = version;
      this.stats.patches++;
      this.emit('change', this.value);
    }
  }

  // stateless: sync the pending notifications, in order, one batch per round trip.
  async syncPending(client) {
    while (client === this.client && !this.closed && this.pending.length > 0) {
      // events the value already reflects (after a reload) need no round trip
      const before = this.pending.length;
      this.pending = this.pending.filter((payload) => !this.reflects(payload));
      this.stats.skipped += before - this.pending.length;
      if (this.pending.length === 0) break;
      const batch = this.pending.splice(0, this.maxBatch);
      let expr = '$1::jsonb';
      batch.forEach((_, i) => {
        expr = `ectosync.sync(${expr}, $${i + 2}::text)`;
      });
      try {
        const { rows } = await client.query(`SELECT ${expr} AS v`, [JSON.stringify(this.value), ...batch]);
        if (client !== this.client) return;
        this.stats.calls++;
        this.stats.syncs += batch.length;
        this.value = rows[0].v;
        this.emit('change', this.value);
      } catch (err) {
        if (err.code !== RELOAD_SQLSTATE || client !== this.client) {
          if (client === this.client) this.pending.unshift(...batch); // (tried again: kick())
          throw err;
        }
        this.stats.reloads++;
        this.pending = [];
        await this.load();
      }
    }
  }

  // stateless: is the payload's event already in the value (same epoch, seq <= value seq)?
  reflects(payload) {
    const ev = eventOf(payload);
    return ev !== null && ev.epoch === this.value.epoch && ev.seq <= Number(this.value.seq);
  }

  async reconnect() {
    this.reconnecting = true; // one retry loop, however many failed attempts end
    const deadline = Date.now() + this.reconnectMs;
    try {
      for (let attempt = 1; !this.closed; attempt++) {
        try {
          await this.connect();
          this.stats.reconnects++;
          return;
        } catch (err) {
          if (Date.now() > deadline) {
            this.emit('error', new Error(`could not reconnect: ${err.message}`));
            return;
          }
          await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500)));
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  // Resolves once every notification received so far has been handled.
  async settle() {
    while (this.busy) await this.busy;
  }

  // Does the local copy equal a fresh load (ignoring "seq" and "seal")?
  async matchesFreshLoad() {
    const { rows } = await this.client.query(
      "SELECT ($1::jsonb - 'seq' - 'seal') = (ectosync.load($2::regclass, $3::jsonb, $4::jsonb) - 'seq' - 'seal') AS same",
      [JSON.stringify(this.value), this.table, this.assocs, this.filter],
    );
    return rows[0].same;
  }

  async close() {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.settle();
    if (this.client) await this.client.end();
  }
}

module.exports = { Holder, RELOAD_SQLSTATE };
