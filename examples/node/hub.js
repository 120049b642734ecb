// hub.js: many held values over one connection, with the `pg` package.
//
//   const hub = new Hub({ connection: { database: 'app' } });
//   hub.on('error', (err) => log(err));   // else errors go to console.error
//   await hub.start();
//   const mine = await hub.hold('user 42 posts', { table: 'posts', filter: { author_id: 42 } });
//   mine.on('change', (value) => render(value));
//
// An application process cannot open a connection per screen of each of its
// users.  A Hub keeps all its values on one session (held values need one:
// give the hub a dedicated connection; everything else can go through a
// pooler) and waits for all of them with one call:
//   ectosync.wait_changes(timeout_ms, patch_once => true) -> a row (name,
//   version, seq, patch, since_version) for each value that changed, as soon
//   as one did; each patch is applied to its value (patch.js), whose 'change'
//   event then fires.  Names of one value that the server shares get its
//   patch once: the others name that row in same_as.
// A patch that does not apply, or one from a version the copy is not at:
// fetch the whole value.  The connection ends: reconnect, hold every value
// again.  Errors (a listener's, a value's) are reported, never end the loop.
'use strict';

const { EventEmitter } = require('node:events');
const { Client } = require('pg');
const { applyPatch, PatchError } = require('./patch');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Errors of a connection that is gone: the server's (08: connection
// exception; 57P01-57P03: terminated, crash, cannot connect now), or any
// error of a client that has failed or ended (pg rejects its queries with
// plain Errors, after its 'error' event: see connect()).  Not a message
// that merely says "Connection": an error thrown by a listener is the
// application's, and must not make the hub hold everything again.
const connectionGone = (err, client) => /^(08|57P0[1-3])/.test(err?.code ?? '') || client?.lost === true;

// Calls each listener of event on its own: one that throws stops neither the
// others nor the hub's loop.  Returns what they threw.
function emitEach(emitter, event, ...args) {
  const thrown = [];
  for (const listener of emitter.rawListeners(event)) { // (raw: once() wrappers remove themselves)
    try {
      listener.apply(emitter, args);
    } catch (err) {
      thrown.push(err);
    }
  }
  return thrown;
}

// One held value of a hub: its shape, its copy and the version it is.
class HeldValue extends EventEmitter {
  constructor(hub, name, { table, assocs = [], filter = null }) {
    super();
    this.hub = hub;
    // Which value this is: a name released and held again is a new value,
    // and a reply of a wait that began before it was held is not about it.
    this.id = ++hub.serial;
    this.name = name;
    this.table = table;
    this.assocs = JSON.stringify(assocs);
    this.filter = filter === null ? null : JSON.stringify(filter);
    this.value = null;
    this.version = 0;
    this.patches = 0;
    this.error = null; // the last error of its changes on the server, if any
  }

  // Moves the copy to the row's version; true if the value changed.  The
  // patch applies in place (a copy per patch would cost the whole value),
  // and until it has, the copy is at no version the server has: one that
  // fails halfway (a PatchError) leaves the next row to fetch the whole
  // value, never to patch what is left.
  apply({ version, patch }) {
    if (patch.length > 0) {
      this.version = -1;
      this.value = applyPatch(patch[0].path === '' ? null : this.value, patch);
      this.patches++;
    }
    this.version = Number(version);
    this.error = null;
    return patch.length > 0;
  }
}

class Hub extends EventEmitter {
  constructor({ connection = {}, timeoutMs = 10000, reconnectMs = 30000 } = {}) {
    super();
    this.connection = connection;
    this.timeoutMs = timeoutMs;
    this.reconnectMs = reconnectMs; // how long reconnecting may fail before an 'error' says so
    this.values = new Map(); // name -> HeldValue
    this.serial = 0; // the id of the last HeldValue made
    this.stats = { waits: 0, reconnects: 0, patchesShared: 0, refetches: 0 };
    this.closed = false;
    this.client = null;
    this.waiting = null;
  }

  async start() {
    this.client = await this.connect();
    // (loop() reports its errors itself: this is a last guard)
    this.loop().catch((err) => this.report(err));
  }

  async connect() {
    const client = new Client(this.connection);
    // pg emits 'error' (the socket failed) or 'end' before it rejects the
    // queries under way: connectionGone() then knows them for what they are.
    client.on('error', () => { client.lost = true; });
    client.on('end', () => { client.lost = true; });
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => {});
      throw err;
    }
    return client;
  }

  // Holds a value on the hub's session: its copy is there when this returns.
  // (It queues behind the wait in progress: keep timeoutMs to seconds.)
  async hold(name, shape) {
    if (this.values.has(name)) throw new Error(`hub: a value is held as "${name}" already`);
    const held = new HeldValue(this, name, shape);
    // In the map at once, so that a second hold() of the name is refused...
    this.values.set(name, held);
    try {
      await this.holdOn(this.client, held);
    } catch (err) {
      // ...and out of it if the server refused (a misspelled table): the name
      // stays free, and a reconnect does not try to hold it
      if (this.values.get(name) === held) this.values.delete(name);
      throw err;
    }
    return held;
  }

  async holdOn(client, held) {
    const { rows } = await client.query(
      'SELECT ectosync.hold($1, $2::regclass, $3::jsonb, $4::jsonb, listen => false) AS v',
      [held.name, held.table, held.assocs, held.filter],
    );
    held.value = rows[0].v;
    held.version = 0;
  }

  async release(name) {
    if (!this.values.delete(name)) return false;
    await this.client.query('SELECT ectosync.release($1)', [name]);
    return true;
  }

  // Reports an error without ever throwing (an EventEmitter throws an
  // 'error' that no one listens to, which would end the loop): to the hub's
  // 'error' listeners, else console.error.  err.held names the value.
  report(err, held = null) {
    if (!(err instanceof Error)) err = new Error(String(err));
    if (held && err.held === undefined) err.held = held.name;
    if (this.listenerCount('error') === 0) return void console.error('ectosync hub:', err);
    for (const thrown of emitEach(this, 'error', err)) console.error('ectosync hub: an error listener threw:', thrown);
  }

  // Runs a value's 'change' listeners, each on its own.
  notify(held) {
    for (const err of emitEach(held, 'change', held.value)) this.report(err, held);
  }

  // The whole value at the server's version: changes() from a version that
  // is not the held one (-1 never is) sends it as a patch at "".
  async refetch(held) {
    this.stats.refetches++;
    const { rows } = await this.client.query('SELECT ectosync.changes($1, -1) AS c', [held.name]);
    if (this.values.get(held.name) !== held) return false; // released meanwhile: the reply is another value's
    return held.apply(rows[0].c);
  }

  // Applies one reply of wait_changes() to the values it names, then runs
  // their listeners.  serial: the last value held when the wait began.
  async applyRows(rows, serial = Infinity) {
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
    // Every row first: the server has moved each of these values on, so a
    // row left out (a listener threw) would leave its copy behind.
    const changed = [];
    const failed = [];
    for (const row of rows) {
      const held = this.values.get(row.name);
      // released, or released and held again after the wait began: the row
      // is about a value the hub no longer has
      if (!held || held.id > serial) continue;
      if (row.error !== null) {
        // its changes failed (its role may no longer read a table of it)
        held.error = row.error;
        failed.push(held);
        continue;
      }
      try {
        // a reply went missing (the patch is from another version), or the
        // patch does not fit the copy: fetch the whole value instead
        let moved;
        try {
          moved = Number(row.since_version) === held.version ? held.apply(row) : await this.refetch(held);
        } catch (err) {
          if (!(err instanceof PatchError)) throw err;
          moved = await this.refetch(held);
        }
        if (moved) changed.push(held);
      } catch (err) {
        if (connectionGone(err, this.client)) throw err; // the reconnect holds every value again
        this.report(err, held); // the copy stays at its version: the next row fetches it whole
      }
    }
    // Then the listeners, each on its own.
    for (const held of failed) {
      const err = new Error(`hub: the changes of "${held.name}" failed: ${held.error}`);
      if (held.listenerCount('error') === 0) this.report(err, held);
      else for (const thrown of emitEach(held, 'error', err)) this.report(thrown, held);
    }
    for (const held of changed) this.notify(held);
  }

  // One wait for every value at a time, until close().  It does not throw.
  async loop() {
    while (!this.closed) {
      const client = this.client;
      try {
        this.stats.waits++;
        const serial = this.serial; // values held from now on are not in this reply
        this.waiting = client.query(
          'SELECT name, version, patch, error, since_version, same_as ' +
            'FROM ectosync.wait_changes($1, patch_once => true)',
          [this.timeoutMs]);
        const { rows } = await this.waiting;
        await this.applyRows(rows, serial);
        for (const err of emitEach(this, 'pumped', rows.length)) this.report(err);
      } catch (err) {
        if (this.closed) return;
        if (connectionGone(err, client)) {
          await this.reconnect();
        } else {
          this.report(err);
          await sleep(100); // (an error every call, say the extension dropped: not a busy loop)
        }
      }
    }
  }

  // A new connection with every value held again.  A value that cannot be
  // (its table dropped, a privilege revoked) is dropped from the hub and
  // reported, the others go on; a connection that fails is closed and tried
  // again, with backoff, until close().  It does not throw.
  async reconnect() {
    this.client?.end().catch(() => {}); // (gone: this frees its socket)
    let deadline = Date.now() + this.reconnectMs;
    for (let attempt = 1; !this.closed; attempt++) {
      let client = null;
      try {
        client = await this.connect();
        for (const held of [...this.values.values()]) {
          try {
            await this.holdOn(client, held);
          } catch (err) {
            if (connectionGone(err, client)) throw err;
            if (this.values.get(held.name) === held) this.values.delete(held.name);
            held.error = err.message;
            this.report(new Error(`hub: "${held.name}" could not be held again, and is dropped: ${err.message}`,
              { cause: err }), held);
          }
        }
        if (this.closed) return void client.end().catch(() => {});
        this.client = client;
        this.stats.reconnects++;
        for (const held of this.values.values()) this.notify(held); // it may have changed while away
        return;
      } catch (err) {
        client?.end().catch(() => {}); // (its session holds values: close it, not leak it)
        if (Date.now() > deadline) {
          this.report(new Error(`hub: could not reconnect for ${this.reconnectMs} ms, trying on: ${err.message}`,
            { cause: err }));
          deadline = Date.now() + this.reconnectMs;
        }
        await sleep(Math.min(50 * attempt, 1000));
      }
    }
  }

  async close() {
    this.closed = true;
    await this.client?.end().catch(() => {});
  }
}

module.exports = { Hub, HeldValue };
