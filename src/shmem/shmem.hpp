/*
 * shmem.hpp: ecto_sync's shared memory, as the rest of the extension sees
 * it.  The layout and the lock protocol are documented in shmem.cpp.
 *
 * All functions act on the current database (MyDatabaseId) unless they take
 * a database oid.  None of them throws or raises an ERROR unless it says so;
 * they may be called from C++ code that owns objects.
 */
#pragma once

#include "core/event.hpp"

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <cstdint>
#include <string>
#include <vector>

namespace ectosync {

/*
 * The epoch of this database's events and values: the generation of shared
 * memory (new after every restart or crash reset) mixed with the database.
 * Seqs count per database, and databases made from one template have
 * tables of the same oids: a value or event of another database must not
 * pass for one of this database's at the same seq.
 */
uint64_t database_epoch();

/* The key of values' seals (value/seal.cpp): random at startup, never shown. */
constexpr size_t kSealKeySize = 32;
const uint8_t *seal_key();

/* The last seq queued in this database (0: none yet). */
uint64_t last_seq();

/*
 * The last seq whose rows the worker has cached: every event up to it can be
 * applied from the cache (changes() applies no further than this; later
 * events get their notification when they are loaded).
 */
uint64_t loaded_seq();

/*
 * The last seq of this database that the worker loads without matching it
 * against the held values' interests first (see DbSlot::unmatched_seq).
 */
uint64_t unmatched_seq();

/*
 * Ensure the current database has a queue slot.  Raises an ERROR (through
 * ereport; call it via pg_call from C++ that owns objects) when all
 * ectosync.max_databases slots are taken.
 */
void attach_database_slot();

/* ---- the queue (capture/xact_buffer.cpp writes, worker.cpp drains) ---- */

/*
 * A transaction's events, encoded: for each, relid, op and the encoded
 * columns (event.hpp), and their distinct tables.  Called from the commit
 * callback: never fails.  What does not fit becomes a RELOAD marker for
 * each of those tables, as do the reloads (tables truncated, or changed
 * past ectosync.max_xact_events: why, ReloadWhy bits).
 */
struct PendingEvent {
  uint32_t relid;
  Op op;
  const char *body;
  uint32_t body_len;
};
struct PendingReload {
  uint32_t relid;
  uint16_t why;
};
/*
 * Whose commit queues, and how many bytes of unprocessed records that role
 * may have in the queue at once: its ectosync.max_role_share of
 * ectosync.queue_size.  Past it, its transactions' tables get RELOAD
 * markers (kReloadQueueShare), so that one role's bulk commits cannot fill
 * the queue and turn every other role's commits into markers.  A single
 * transaction bigger than the share gets markers too.  The role is the current user at the
 * commit (SET ROLE's, SET LOCAL ROLE's); superusers are not counted (role
 * InvalidOid).  Reads the catalogs: taken before the commit
 * (queue_writer()), used at it.
 */
struct QueueWriter {
  Oid role;
  uint64_t share;
};
QueueWriter queue_writer();
void queue_commit(const PendingEvent *events, int count, const uint32_t *tables, int ntables,
                  const PendingReload *reloads, int reload_count, const QueueWriter &writer);
/*
 * A RELOAD marker of every table (relid 0) in every database that uses
 * ecto_sync, not only this one: roles are the cluster's (role_change.cpp).
 * Called from the commit callback: never fails.
 */
void queue_reload_everywhere(uint16_t why);

/* ---- the event log (sync.cpp reads) ---- */

enum class LogLookup { Found, Expired, NoRecord, Unknown };
/*
 * Expired: the record was overwritten.  NoRecord: the seq never had one (a
 * RELOAD marker that found no room).  Unknown: seq is beyond the last
 * queued seq of this database.  A RELOAD marker is Found: op Reload, its
 * table (0: every table) and why, no columns.
 */
LogLookup event_lookup(uint64_t seq, Event &out);
/*
 * The table and operation of each event after `after` up to `upto`, read
 * under one lock without decoding the columns (out must have room
 * reserved: nothing is allocated under the lock).  Stops at the first seq
 * that is not Found, and returns its lookup (Found: all of them).
 */
struct EventHead {
  uint64_t seq;
  uint32_t relid;
  Op op;
};
LogLookup event_heads(uint64_t after, uint64_t upto, std::vector<EventHead> &out);

/* ---- the row cache ---- */

struct CachedRow {
  bool found = false;  /* an entry exists for the key */
  bool exists = false; /* false: tombstone, the row did not exist */
  uint64_t version = 0;
  Jsonb *row = nullptr; /* palloc'd copy in CurrentMemoryContext, or null */
};
CachedRow cache_get(uint32_t relid, const std::string &key);
/* Whether the cache has an entry (row or tombstone) for the key; nothing copied. */
bool cache_holds(uint32_t relid, const std::string &key);
/*
 * Table relid's capture (re)starts (watch() created its trigger), or its
 * rows changed shape (ALTER TABLE): changes made to it before were not
 * captured, or its cached rows read before now have the old shape: they
 * are stale.  Queues a RELOAD marker for the table (why: kReloadCapture or
 * kReloadSchema; kReloadPolicy: a policy source's capture started, and no
 * row is stale),
 * whose seq becomes the table's cache floor: cache_get() misses, and
 * cache_put() ignores, versions of its rows below it.  Values that do not
 * hold the table, and rows of other tables, are left alone.  Raises an
 * ERROR like attach_database_slot().
 */
void restart_capture(uint32_t relid, uint16_t why);
/*
 * restart_capture(relid) once this transaction commits (xact_buffer.cpp):
 * rows came or went uncaptured (a partition attached or detached), and the
 * marker must follow the commit, so that a value reloaded for it sees them.
 */
void restart_capture_at_commit(uint32_t relid);
/*
 * When a read of rows for the cache began: the arena's head, then the last
 * seq (the version of what the read sees).  A record of a newer version is
 * written after the head was taken: if the arena has evicted past that
 * head, such a record may have been and gone, and cache_put() stores the
 * key as unknown rather than serve the older read.
 */
struct ReadMark {
  uint64_t arena = 0;
  uint64_t version = 0;
};
ReadMark begin_read();
/* row == nullptr stores a tombstone.  Keeps the newer of two versions. */
void cache_put(uint32_t relid, const std::string &key, const ReadMark &mark, const Jsonb *row);
/*
 * The row changed as of version and nobody read it: lookups miss, and puts
 * of older versions are ignored (a read that began before the change).
 */
void cache_forget(uint32_t relid, const std::string &key, uint64_t version);

/*
 * A session uses these tables through ecto_sync (load, sync, hold, changes):
 * for ectosync.load_window, the worker reads their changed rows ahead of
 * time, so that the sessions' next calls find them cached.
 */
void note_use(const std::vector<uint32_t> &relids);

/* ---- the interests of held values (interest.hpp) ---- */

struct Interest;
/*
 * Takes a free entry for this backend's current database; -1 when none is
 * free.  The worker sets this backend's latch when an event matches, and
 * notifies the entry's channel too when listening.
 */
int interest_attach(uint32_t &generation, bool listening);
/* Copies interest into the entry; from now on the worker matches with it. */
void interest_publish(int index, const Interest &interest);
/* Whether this backend's entry has interest published already. */
bool interest_published(int index, const Interest &interest);
/* The last event that matched the interest at index (0: none). */
uint64_t interest_matched_seq(int index);
/*
 * The first event after after that may have matched the interest at index,
 * as far as the last batches that matched it tell (UINT64_MAX: none did);
 * after + 1 when they cannot tell.  The events in between matched nothing:
 * a value that has read every event up to after, is trusted from before
 * it, and has no unmatched event (unmatched_seq()) after it, need not read
 * them.  A value that nothing concerned for
 * thousands of events read them all at its next change (a shared value's
 * turn took 5 ms), though its interest said none could change it.
 */
uint64_t interest_unmatched_until(int index, uint64_t after);
/* Whether the interest this backend published at index matches ev. */
bool interest_entry_matches(int index, const Event &ev);
void interest_detach(int index);
/* Notifications the worker sent for the entry so far. */
uint64_t interest_notifications(int index);
/*
 * This backend's entries whose notifications moved since they were last
 * taken (each once); false when it cannot tell which: look at all of them.
 */
bool interest_take_moved(std::vector<int> &moved);
/* Whether interest_take_moved() would find some now. */
bool interest_moved_pending();
/* The channel of an entry: "ectosync_held_<index>_<tag>". */
std::string interest_channel(int index, uint32_t generation);
/*
 * This session's channel, "ectosync_changes_<pid>_<tag>", which the worker
 * notifies (once a batch) when an event concerns any value the session
 * holds with an interest entry, from now on; the channel's name.
 */
std::string interest_listen_session();
/* Whether this session called listen_changes(). */
bool interest_session_listens();
/* The channel of a session (its pid and tag). */
std::string session_channel(int pid, uint64_t tag);

}  // namespace ectosync
