/*
 * shmem.cpp: ecto_sync's shared memory.
 *
 * Sized once, at server start, from the GUCs; it never grows.
 *
 *   EctoShared           epoch, the cache's counters
 *   DbSlot[max_databases]
 *     each: queue state, counters, the event-log index (event_log_size
 *     entries: seq -> ring position) and the ring (queue_size bytes)
 *   the cache's hash table (dynahash in shared memory, fixed size)
 *   the cache's arena (cache_size bytes)
 *   InterestEntry[max_held_values], interest_stride() apart: what each held
 *   value depends on; and their databases side by side (interest_dbs), and
 *   a bit per entry that its worker must index it again (interest_dirty)
 *   WakeQueue[MaxBackends]: the entries whose count moved, per holder
 *   the values that sessions share (held_shared.cpp, which documents them)
 *
 * The queue and the event log are one ring of records per database:
 * writers append at head at commit; the worker reads from `processed` to
 * head, and after it has notified it advances `processed`; records behind
 * `processed` stay readable (the event log) until a writer needs their space
 * and advances `oldest`.  Unprocessed records are never overwritten: a
 * transaction that does not fit becomes RELOAD markers (records, or the
 * slot's gap set).  Each role's unprocessed records count in its account
 * (`writers`), which its ectosync.max_role_share of the ring bounds.
 *
 * The cache is a FIFO arena of row records plus a hash of fixed size from
 * (database, table, key) to the newest record.  Putting a row appends a
 * record; making room (in the arena, or in the hash) drops the oldest
 * records and the hash entries that still point at them (evictions).  A
 * record is a row, a tombstone (no such row), or "unknown": the row changed
 * and the worker did not read it (no session used its table lately, see
 * note_use()); lookups miss on it, and it keeps
 * out reads older than the change.  A newer record that was evicted keeps
 * nothing out: a read is stored as unknown when the arena has evicted past
 * where its head stood when the read began (ReadMark).
 *
 * Lock protocol (one LWLock tranche, "ecto_sync"):
 *   slots_lock   which database owns which slot; the workers' pids/latches
 *   slot->lock   (one per slot) everything else in that slot: seq counter,
 *                ring, index, gap set, markers not yet notified, queue
 *                counters, the tables' last use.  Writers take it exclusive at commit; the worker
 *                shared to copy a batch and exclusive to advance `processed`
 *                and drain gaps; sync() shared to copy one record;
 *                note_use() exclusive, at most once a second per table and
 *                backend.
 *   cache_lock   the cache's hash and arena: exclusive to put, shared to get
 *                (hit/miss counters are atomics).
 *   interest_lock  which entry belongs to which backend (interest_dbs and
 *                the high-water mark too): exclusive to take or free one,
 *                shared to read them (the worker's matching).  Each entry's
 *                spinlock guards its notification count, the first and
 *                last matched seq of its last batches, and `queued`; its
 *                interest is written by its holder alone under a seqlock
 *                (`change`), and read in place by the worker.
 *                interest_dirty's bits are atomics: a holder sets its
 *                entry's after publishing, the worker clears it before
 *                reading the entry again.
 *   wake queue's spinlock (one per backend) its entries: the worker
 *                appends under interest_lock shared, after releasing the
 *                entry's spinlock; the backend takes them out, then clears
 *                each entry's `queued` under its spinlock.  No two
 *                spinlocks are held at once.
 *   slot->unmatched_seq  (under slot->lock) the last seq loaded without
 *                being matched against interests first.
 *   held_lock    the shared held values (held_shared.cpp)
 * Order: slots_lock, then a slot's lock.  cache_lock, interest_lock and held_lock
 * are never held together with another ecto_sync lock.  No lock is held across anything that can
 * ERROR except palloc-free copies.
 */
#include "shmem/shmem.hpp"

#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem_internal.hpp"
#include "shmem/layout.hpp"

extern "C" {
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <cstring>
#include <random>

namespace ectosync {

EctoShared *shared = nullptr;
HTAB *cache_hash = nullptr;
InterestEntry *interests = nullptr;
Oid *interest_dbs = nullptr;
pg_atomic_uint64 *interest_dirty = nullptr;
WakeQueue *wake_queues = nullptr;
char *cache_arena = nullptr;
static shmem_request_hook_type prev_shmem_request_hook = nullptr;
static shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

/* ---- sizes ---- */

uint64 ring_bytes() {
  return (uint64)settings.queue_size_kb * 1024;
}
uint64 arena_bytes() {
  return (uint64)settings.cache_size_kb * 1024;
}
/* The hash of the row cache: fixed (HASH_FIXED_SIZE), one entry per 256
 * bytes of the arena.  A full hash evicts the oldest records (row_cache.cpp)
 * instead of taking the spare shared memory that PostgreSQL's lock tables
 * grow into. */
static long cache_max_entries() {
  /* (one less than a power of two: dynahash splits a bucket when its
   * entries pass the buckets, and a full hash of a power of two entries
   * would take one more segment of bucket pointers from the spare memory) */
  return std::max<long>(1024, (long)(arena_bytes() / 256)) - 1;
}

static Size slot_stride() {
  return MAXALIGN(sizeof(DbSlot)) + MAXALIGN(sizeof(LogIndexEntry) * settings.event_log_size) +
         MAXALIGN(ring_bytes());
}

/* The header and the slots: one ShmemInitStruct. */
static Size slots_size() {
  return add_size(MAXALIGN(sizeof(EctoShared)), mul_size(slot_stride(), settings.max_databases));
}

Size interest_stride() {
  return MAXALIGN(offsetof(InterestEntry, interest) + Interest::bytes(settings.interest_bytes * 8));
}

InterestEntry *interest_entry(int i) {
  return (InterestEntry *)((char *)interests + (Size)i * interest_stride());
}

static Size interests_size() {
  return mul_size(interest_stride(), settings.max_held_values);
}

static Size interest_dbs_size() {
  return mul_size(sizeof(Oid), settings.max_held_values);
}

static Size interest_dirty_size() {
  return mul_size(sizeof(pg_atomic_uint64), (settings.max_held_values + 63) / 64);
}

static Size wake_queues_size() {
  return mul_size(sizeof(WakeQueue), MaxBackends);
}

static Size shared_size() {
  Size size = slots_size();
  size = add_size(size, interests_size());
  size = add_size(size, MAXALIGN(interest_dbs_size()));
  size = add_size(size, MAXALIGN(interest_dirty_size()));
  size = add_size(size, MAXALIGN(wake_queues_size()));
  size = add_size(size, hash_estimate_size(cache_max_entries(), sizeof(CacheEntry)));
  size = add_size(size, MAXALIGN(arena_bytes()));
  size = add_size(size, held_shared_shmem_size());
  return size;
}

DbSlot *slot_at(int i) {
  return (DbSlot *)((char *)shared + MAXALIGN(sizeof(EctoShared)) + slot_stride() * i);
}

LogIndexEntry *slot_index(DbSlot *slot) {
  return (LogIndexEntry *)((char *)slot + MAXALIGN(sizeof(DbSlot)));
}

char *slot_ring(DbSlot *slot) {
  return (char *)slot_index(slot) + MAXALIGN(sizeof(LogIndexEntry) * settings.event_log_size);
}

/* ---- startup ---- */

static void shmem_request() {
  if (prev_shmem_request_hook) prev_shmem_request_hook();
  RequestAddinShmemSpace(shared_size());
  RequestNamedLWLockTranche("ecto_sync", 4 + settings.max_databases);
}

/* A random epoch, so that values and events of an earlier generation of
 * shared memory (before a restart or crash reset) are recognised. */
static uint64 new_epoch() {
  uint64 epoch = (uint64)GetCurrentTimestamp() ^ ((uint64)MyProcPid << 40);
  try {
    std::random_device device;
    epoch ^= ((uint64)device() << 32) ^ device();
  } catch (...) {
    /* no entropy source: the time and pid still differ between restarts */
  }
  return epoch ? epoch : 1;
}

static void shmem_startup() {
  if (prev_shmem_startup_hook) prev_shmem_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found;
  shared = (EctoShared *)ShmemInitStruct("ecto_sync", slots_size(), &found);
  if (!found) {
    LWLockPadded *locks = GetNamedLWLockTranche("ecto_sync");
    memset(shared, 0, MAXALIGN(sizeof(EctoShared)));
    shared->epoch = new_epoch();
    if (!pg_strong_random(shared->channel_key, sizeof shared->channel_key))
      ereport(FATAL, (errmsg("ecto_sync: could not generate a random key for channel names")));
    if (!pg_strong_random(shared->seal_key, sizeof shared->seal_key))
      ereport(FATAL, (errmsg("ecto_sync: could not generate a random key for values' seals")));
    shared->slots_lock = &locks[0].lock;
    shared->cache_lock = &locks[1].lock;
    shared->interest_lock = &locks[2].lock;
    shared->nslots = settings.max_databases;
    pg_atomic_init_u64(&shared->cache_hits, 0);
    pg_atomic_init_u64(&shared->cache_misses, 0);
    for (int i = 0; i < settings.max_databases; i++) {
      DbSlot *slot = slot_at(i);
      memset(slot, 0, sizeof(DbSlot));
      slot->lock = &locks[4 + i].lock;
      slot->next_seq = 1;
      memset(slot_index(slot), 0, sizeof(LogIndexEntry) * settings.event_log_size);
    }
  }
  HASHCTL info;
  memset(&info, 0, sizeof info);
  info.keysize = sizeof(CacheKey);
  info.entrysize = sizeof(CacheEntry);
  cache_hash = ShmemInitHash("ecto_sync row cache", cache_max_entries(), cache_max_entries(), &info,
                             HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
  cache_arena = (char *)ShmemInitStruct("ecto_sync cache arena", MAXALIGN(arena_bytes()), &found);
  interests = (InterestEntry *)ShmemInitStruct("ecto_sync interests", interests_size(), &found);
  interest_dbs =
      (Oid *)ShmemInitStruct("ecto_sync interest databases", MAXALIGN(interest_dbs_size()), &found);
  interest_dirty = (pg_atomic_uint64 *)ShmemInitStruct("ecto_sync interest changes",
                                                       MAXALIGN(interest_dirty_size()), &found);
  wake_queues =
      (WakeQueue *)ShmemInitStruct("ecto_sync wake queues", MAXALIGN(wake_queues_size()), &found);
  held_shared_shmem_startup(&GetNamedLWLockTranche("ecto_sync")[3].lock);
  if (!found) {
    memset(interest_dbs, 0, interest_dbs_size());
    for (int w = 0; w < (settings.max_held_values + 63) / 64; w++)
      pg_atomic_init_u64(&interest_dirty[w], 0);
    for (int b = 0; b < MaxBackends; b++) {
      memset(&wake_queues[b], 0, sizeof(WakeQueue));
      SpinLockInit(&wake_queues[b].mutex);
    }
    for (int i = 0; i < settings.max_held_values; i++) {
      InterestEntry *e = interest_entry(i);
      memset(e, 0, interest_stride());
      SpinLockInit(&e->mutex);
      pg_atomic_init_u32(&e->change, 0);
    }
  }
  LWLockRelease(AddinShmemInitLock);
}

void shmem_init() {
  prev_shmem_request_hook = shmem_request_hook;
  shmem_request_hook = shmem_request;
  prev_shmem_startup_hook = shmem_startup_hook;
  shmem_startup_hook = shmem_startup;
}

static void require_shared() {
  if (!shared)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("ecto_sync must be loaded via shared_preload_libraries")));
}

const uint8_t *seal_key() {
  return shared->seal_key;
}

uint64_t database_epoch() {
  if (!shared) return 0;
  /* (a bijection of the oid: no two databases share an epoch) */
  uint64 epoch = shared->epoch ^ mix64(MyDatabaseId);
  return epoch ? epoch : 1;
}

/* ---- database slots ---- */

static DbSlot *my_slot = nullptr; /* this backend's, once attached */

DbSlot *find_slot(Oid dboid) {
  for (int i = 0; i < shared->nslots; i++)
    if (slot_at(i)->dboid == dboid) return slot_at(i);
  return nullptr;
}

DbSlot *current_slot() {
  if (!shared) return nullptr;
  if (my_slot && my_slot->dboid == MyDatabaseId) return my_slot;
  LWLockAcquire(shared->slots_lock, LW_SHARED);
  my_slot = find_slot(MyDatabaseId);
  LWLockRelease(shared->slots_lock);
  return my_slot;
}

DbSlot *claim_slot(Oid dboid) {
  LWLockAcquire(shared->slots_lock, LW_EXCLUSIVE);
  DbSlot *slot = find_slot(dboid);
  if (!slot) {
    slot = find_slot(InvalidOid);
    if (slot) {
      LWLockAcquire(slot->lock, LW_EXCLUSIVE);
      /* The ring starts empty; next_seq keeps counting so that seqs of a
       * reused slot never repeat within this epoch. */
      slot->head = slot->processed = slot->oldest = 0;
      /* Seqs of a database never go back, not even when it takes another
       * slot (dropped and created again): values of its earlier slot must
       * not look newer than this slot's events. */
      for (int i = 0; i < shared->nslots; i++)
        slot->next_seq = std::max(slot->next_seq, slot_at(i)->next_seq);
      slot->processed_seq = slot->loaded_seq = slot->next_seq - 1;
      /* Index entries of the slot's last owner point into a ring that is
       * gone. */
      memset(slot_index(slot), 0, sizeof(LogIndexEntry) * settings.event_log_size);
      slot->cache_floor = 0; /* watch() sets floors when it installs triggers */
      slot->nfloors = 0;
      slot->ngaps = 0;
      slot->gap_all = false;
      slot->gap_all_why = 0;
      slot->roles_marker_at = 0;
      slot->nunsent = 0;
      slot->reading_relid = slot->overrun_relid = InvalidOid;
      memset(slot->ended, 0, sizeof slot->ended);
      memset(slot->writers, 0, sizeof slot->writers);
      memset(&slot->stats, 0, sizeof slot->stats);
      memset(slot->demand, 0, sizeof slot->demand);
      slot->dboid = dboid;
      LWLockRelease(slot->lock);
    }
  }
  LWLockRelease(shared->slots_lock);
  return slot;
}

void attach_database_slot() {
  require_shared();
  if (current_slot()) return;
  my_slot = claim_slot(MyDatabaseId);
  if (!my_slot)
    ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                    errmsg("ecto_sync: all %d database slots are in use", shared->nslots),
                    errhint("Raise ectosync.max_databases and restart the server.")));
}

void release_slot(DbSlot *slot, Oid dboid) {
  LWLockAcquire(shared->slots_lock, LW_EXCLUSIVE);
  if (slot->dboid != dboid) {
    LWLockRelease(shared->slots_lock);
    return;
  }
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  slot->dboid = InvalidOid;
  slot->head = slot->processed = slot->oldest = 0;
  memset(slot->writers, 0, sizeof slot->writers);
  LWLockRelease(slot->lock);
  slot->worker_pid = 0;
  slot->worker_latch = nullptr;
  LWLockRelease(shared->slots_lock);
}

uint64_t loaded_seq() {
  DbSlot *slot = current_slot();
  if (!slot) return 0;
  LWLockAcquire(slot->lock, LW_SHARED);
  uint64 seq = std::max(slot->loaded_seq, slot->processed_seq);
  LWLockRelease(slot->lock);
  return seq;
}

void queue_mark_loaded(DbSlot *slot, uint64 seq) {
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  slot->loaded_seq = std::max(slot->loaded_seq, seq);
  LWLockRelease(slot->lock);
}

uint64_t unmatched_seq() {
  DbSlot *slot = current_slot();
  if (!slot) return 0;
  LWLockAcquire(slot->lock, LW_SHARED);
  uint64 seq = slot->unmatched_seq;
  LWLockRelease(slot->lock);
  return seq;
}

uint64_t last_seq() {
  DbSlot *slot = current_slot();
  if (!slot) return 0;
  LWLockAcquire(slot->lock, LW_SHARED);
  uint64 seq = slot->next_seq - 1;
  LWLockRelease(slot->lock);
  return seq;
}

}  // namespace ectosync
