/*
 * shared.cpp: ecto_sync's shared memory.
 *
 * Sized once, at server start, from the GUCs; it never grows.
 *
 *   EctoShared           epoch, the cache's counters
 *   DbSlot[max_databases]
 *     each: queue state, counters, the event-log index (event_log_size
 *     entries: seq -> ring position) and the ring (queue_size bytes)
 *   the cache's hash table (dynahash in shared memory, fixed size)
 *   the cache's arena (cache_size bytes)
 *   InterestEntry[max_held_values]: what each held value depends on
 *   the values that sessions share (held_shared.cpp, which documents them)
 *
 * The queue and the event log are one ring of records per database:
 * writers append at head at commit; the worker reads from `processed` to
 * head, and after it has notified it advances `processed`; records behind
 * `processed` stay readable (the event log) until a writer needs their space
 * and advances `oldest`.  Unprocessed records are never overwritten: a
 * transaction that does not fit becomes RELOAD markers in the slot's gap set.
 *
 * The cache is a FIFO arena of row records plus a hash from (database,
 * table, key) to the newest record.  Putting a row appends a record; making
 * room drops the oldest records and the hash entries that still point at
 * them (evictions).  A record is a row, a tombstone (no such row), or
 * "unknown": the row changed and the worker did not read it (no session
 * used its table lately, see note_use()); lookups miss on it, and it keeps
 * out reads older than the change.
 *
 * Lock protocol (one LWLock tranche, "ecto_sync"):
 *   slots_lock   which database owns which slot; the workers' pids/latches
 *   slot->lock   (one per slot) everything else in that slot: seq counter,
 *                ring, index, gap set, queue counters, the tables' last
 *                use.  Writers take it exclusive at commit; the worker
 *                shared to copy a batch and exclusive to advance `processed`
 *                and drain gaps; sync() shared to copy one record;
 *                note_use() exclusive, at most once a second per table and
 *                backend.
 *   cache_lock   the cache's hash and arena: exclusive to put, shared to get
 *                (hit/miss counters are atomics).
 *   interest_lock  which entry belongs to which backend: exclusive to take
 *                or free one, shared to read them (the worker's matching).
 *                Each entry's spinlock guards its contents, held only to
 *                copy them in or out.
 *   held_lock    the shared held values (held_shared.cpp)
 * Order: slots_lock, then a slot's lock.  cache_lock, interest_lock and held_lock
 * are never held together with another ecto_sync lock.  No lock is held across anything that can
 * ERROR except palloc-free copies.
 */
#include "shmem/shared.hpp"

#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shared_internal.hpp"

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
static HTAB *cache_hash = nullptr;
static InterestEntry *interests = nullptr;
static char *cache_arena = nullptr;
static shmem_request_hook_type prev_shmem_request_hook = nullptr;
static shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

/* ---- sizes ---- */

static uint64 ring_bytes() {
  return (uint64)settings.queue_size_kb * 1024;
}
static uint64 arena_bytes() {
  return (uint64)settings.cache_size_kb * 1024;
}
static long cache_max_entries() {
  return std::max<long>(1024, (long)(arena_bytes() / 256));
}

static Size slot_stride() {
  return MAXALIGN(sizeof(DbSlot)) + MAXALIGN(sizeof(LogIndexEntry) * settings.event_log_size) +
         MAXALIGN(ring_bytes());
}

/* The header and the slots: one ShmemInitStruct. */
static Size slots_size() {
  return add_size(MAXALIGN(sizeof(EctoShared)), mul_size(slot_stride(), settings.max_databases));
}

static Size interests_size() {
  return mul_size(MAXALIGN(sizeof(InterestEntry)), settings.max_held_values);
}

static Size shared_size() {
  Size size = slots_size();
  size = add_size(size, interests_size());
  size = add_size(size, hash_estimate_size(cache_max_entries(), sizeof(CacheEntry)));
  size = add_size(size, MAXALIGN(arena_bytes()));
  size = add_size(size, held_shared_shmem_size());
  return size;
}

DbSlot *slot_at(int i) {
  return (DbSlot *)((char *)shared + MAXALIGN(sizeof(EctoShared)) + slot_stride() * i);
}

static LogIndexEntry *slot_index(DbSlot *slot) {
  return (LogIndexEntry *)((char *)slot + MAXALIGN(sizeof(DbSlot)));
}

static char *slot_ring(DbSlot *slot) {
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
                             HASH_ELEM | HASH_BLOBS);
  cache_arena = (char *)ShmemInitStruct("ecto_sync cache arena", MAXALIGN(arena_bytes()), &found);
  interests = (InterestEntry *)ShmemInitStruct("ecto_sync interests", interests_size(), &found);
  held_shared_shmem_startup(&GetNamedLWLockTranche("ecto_sync")[3].lock);
  if (!found) {
    for (int i = 0; i < settings.max_held_values; i++) {
      memset(&interests[i], 0, sizeof(InterestEntry));
      SpinLockInit(&interests[i].mutex);
    }
  }
  LWLockRelease(AddinShmemInitLock);
}

void shared_init() {
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

uint64_t shared_epoch() {
  return shared ? shared->epoch : 0;
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

uint64_t last_seq() {
  DbSlot *slot = current_slot();
  if (!slot) return 0;
  LWLockAcquire(slot->lock, LW_SHARED);
  uint64 seq = slot->next_seq - 1;
  LWLockRelease(slot->lock);
  return seq;
}

/* ---- the ring ---- */

void ring_read(DbSlot *slot, uint64 pos, void *dst, size_t len) {
  uint64 size = ring_bytes(), off = pos % size;
  size_t first = std::min<uint64>(len, size - off);
  memcpy(dst, slot_ring(slot) + off, first);
  if (first < len) memcpy((char *)dst + first, slot_ring(slot), len - first);
}

static void ring_write(DbSlot *slot, uint64 pos, const void *src, size_t len) {
  uint64 size = ring_bytes(), off = pos % size;
  size_t first = std::min<uint64>(len, size - off);
  memcpy(slot_ring(slot) + off, src, first);
  if (first < len) memcpy(slot_ring(slot), (const char *)src + first, len - first);
}

static uint32 record_size(uint32 body_len) {
  return (uint32)MAXALIGN(sizeof(RecordHeader) + body_len);
}

/* Frees processed records until `need` bytes fit; false if they cannot. */
static bool make_room(DbSlot *slot, uint64 need) {
  while (slot->head + need - slot->oldest > ring_bytes()) {
    if (slot->oldest >= slot->processed) return false;
    RecordHeader header;
    ring_read(slot, slot->oldest, &header, sizeof header);
    slot->oldest += header.len;
  }
  return true;
}

/* A RELOAD marker for relid, why: ReloadWhy bits; one per table, its bits or-ed. */
static void add_gap(DbSlot *slot, uint32 relid, uint8 why) {
  for (int i = 0; i < slot->ngaps; i++)
    if (slot->gaps[i] == relid) {
      slot->gap_why[i] |= why;
      return;
    }
  if (slot->ngaps < kMaxGaps) {
    slot->gap_why[slot->ngaps] = why;
    slot->gaps[slot->ngaps++] = relid;
  } else {
    slot->gap_all = true;
    slot->gap_all_why |= why;
  }
}

/*
 * Appends one record at head with the next seq and indexes it in the event
 * log.  The caller holds slot->lock exclusive and made room for it.
 */
static uint64 append_record(DbSlot *slot, uint32 relid, Op op, const char *body, uint32 body_len,
                            TimestampTz committed_at) {
  RecordHeader header = {};
  header.len = record_size(body_len);
  header.body_len = body_len;
  header.relid = relid;
  header.seq = slot->next_seq++;
  header.op = (char)op;
  header.committed_at = committed_at;
  ring_write(slot, slot->head, &header, sizeof header);
  if (body_len > 0) ring_write(slot, slot->head + sizeof header, body, body_len);
  LogIndexEntry *entry = &slot_index(slot)[header.seq % settings.event_log_size];
  entry->seq = header.seq;
  entry->pos = slot->head;
  slot->head += header.len;
  return header.seq;
}

void queue_commit(const PendingEvent *events, int count, const PendingReload *reloads,
                  int reload_count) {
  DbSlot *slot = current_slot();
  if (!slot || (count == 0 && reload_count == 0)) return;
  uint64 need = 0;
  for (int i = 0; i < count; i++) need += record_size(events[i].body_len);
  TimestampTz now = GetCurrentTimestamp();

  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  if (slot->dboid != MyDatabaseId) {
    /* The slot was released (extension dropped): nobody listens. */
    LWLockRelease(slot->lock);
    return;
  }
  if (count > 0 && make_room(slot, need)) {
    for (int i = 0; i < count; i++)
      append_record(slot, events[i].relid, events[i].op, events[i].body, events[i].body_len, now);
    slot->stats.events_queued += count;
  } else {
    for (int i = 0; i < count; i++) add_gap(slot, events[i].relid, kReloadQueueFull);
    slot->stats.events_dropped += count;
  }
  for (int i = 0; i < reload_count; i++) add_gap(slot, reloads[i].relid, reloads[i].why);
  slot->stats.queue_peak_bytes =
      std::max<uint64>(slot->stats.queue_peak_bytes, slot->head - slot->processed);
  Latch *latch = slot->worker_latch;
  LWLockRelease(slot->lock);
  if (latch) SetLatch(latch);
}

LogLookup event_lookup(uint64_t seq, Event &out) {
  DbSlot *slot = current_slot();
  if (!slot) return LogLookup::Unknown;
  RecordHeader header;
  char body_buf[4096];
  std::string body;
  LWLockAcquire(slot->lock, LW_SHARED);
  if (seq >= slot->next_seq) {
    LWLockRelease(slot->lock);
    return LogLookup::Unknown;
  }
  LogIndexEntry entry = slot_index(slot)[seq % settings.event_log_size];
  if (entry.seq < seq) {
    /* Entries are written in seq order: seq never had a record. */
    LWLockRelease(slot->lock);
    return LogLookup::NoRecord;
  }
  if (entry.seq != seq || entry.pos < slot->oldest) {
    LWLockRelease(slot->lock);
    return LogLookup::Expired;
  }
  ring_read(slot, entry.pos, &header, sizeof header);
  /* Copy under the lock into a fixed buffer: no allocation while locked. */
  uint32 len = std::min<uint32>(header.body_len, sizeof body_buf);
  ring_read(slot, entry.pos + sizeof header, body_buf, len);
  bool complete = len == header.body_len;
  LWLockRelease(slot->lock);
  if (!complete) {
    /* Rare: a key wider than the buffer; read again with room for it. */
    body.resize(header.body_len);
    LWLockAcquire(slot->lock, LW_SHARED);
    LogIndexEntry again = slot_index(slot)[seq % settings.event_log_size];
    bool still_there = again.seq == seq && again.pos >= slot->oldest;
    if (still_there) ring_read(slot, entry.pos + sizeof header, body.data(), body.size());
    LWLockRelease(slot->lock);
    if (!still_there) return LogLookup::Expired;
  } else {
    body.assign(body_buf, len);
  }
  out.seq = header.seq;
  out.relid = header.relid;
  out.op = (Op)header.op;
  out.why = 0;
  if (out.op == Op::Reload) {
    /* A marker's body is its ReloadWhy bits, not columns. */
    out.columns.clear();
    if (!body.empty()) out.why = (uint8)body[0];
    return LogLookup::Found;
  }
  if (!decode_columns(body, out.columns)) return LogLookup::Expired;
  return LogLookup::Found;
}

/* ---- worker side of the queue ---- */

int queue_take_batch(DbSlot *slot, int max_events, std::vector<QueuedEvent> &batch,
                     uint64 &batch_end) {
  batch.clear();
  LWLockAcquire(slot->lock, LW_SHARED);
  uint64 pos = slot->processed, head = slot->head;
  LWLockRelease(slot->lock);
  /* Records between processed and head are never overwritten (make_room
   * stops at processed), so they can be read without the lock once head
   * was read under it. */
  while (pos < head && (int)batch.size() < max_events) {
    QueuedEvent ev;
    ring_read(slot, pos, &ev.header, sizeof ev.header);
    ev.body.resize(ev.header.body_len);
    ring_read(slot, pos + sizeof ev.header, ev.body.data(), ev.body.size());
    pos += ev.header.len;
    batch.push_back(std::move(ev));
  }
  batch_end = pos;
  return (int)batch.size();
}

void queue_finish_batch(DbSlot *slot, uint64 batch_end, uint64 last_seq_done, int events,
                        const std::vector<int64> &lags_us) {
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  slot->processed = batch_end;
  slot->processed_seq = std::max(slot->processed_seq, last_seq_done);
  /* Caught up: seqs without a record (cache floors) are done too. */
  if (slot->processed == slot->head && slot->ngaps == 0 && !slot->gap_all)
    slot->processed_seq = slot->next_seq - 1;
  slot->stats.events_processed += events;
  slot->stats.batches++;
  for (int64 lag : lags_us) {
    slot->lag_us[slot->lag_next % kLagWindow] = (uint32)std::min<int64>(lag, UINT32_MAX);
    slot->lag_next++;
  }
  LWLockRelease(slot->lock);
}

void queue_take_gaps(DbSlot *slot, std::vector<std::pair<uint32, uint64>> &gaps) {
  gaps.clear();
  gaps.reserve(kMaxGaps); /* no allocation under the lock */
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  /* Only when the worker has caught up: a gap's seq must follow every event
   * queued before it. */
  if (slot->processed == slot->head) {
    /* Each marker is also a record of the event log (processed at once), so
     * that changes() sees it without its notification.  Room is there:
     * every record is processed.  Without room, its seq has no record:
     * readers of the log take that as "reload". */
    TimestampTz now = GetCurrentTimestamp();
    int count = slot->gap_all ? 1 : slot->ngaps;
    for (int i = 0; i < count; i++) {
      uint32 relid = slot->gap_all ? 0 : slot->gaps[i];
      /* Its body: why (what the reasons of replies say). */
      char why = (char)(slot->gap_all ? slot->gap_all_why : slot->gap_why[i]);
      if (make_room(slot, record_size(1))) {
        gaps.emplace_back(relid, append_record(slot, relid, Op::Reload, &why, 1, now));
        slot->processed = slot->head;
      } else {
        gaps.emplace_back(relid, slot->next_seq++);
      }
    }
    slot->stats.gaps += gaps.size();
    slot->ngaps = 0;
    slot->gap_all = false;
    slot->gap_all_why = 0;
    if (!gaps.empty()) slot->processed_seq = gaps.back().second;
  }
  LWLockRelease(slot->lock);
}

void queue_add_gaps(DbSlot *slot, const std::vector<uint32_t> &relids, uint8 why) {
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  for (uint32_t relid : relids) add_gap(slot, relid, why);
  LWLockRelease(slot->lock);
}

void queue_count_loads(DbSlot *slot, uint64 rows, uint64 queries, uint64 notifications,
                       uint64 rows_not_loaded) {
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  slot->stats.rows_loaded += rows;
  slot->stats.load_queries += queries;
  slot->stats.notifications += notifications;
  slot->stats.rows_not_loaded += rows_not_loaded;
  LWLockRelease(slot->lock);
}

/* ---- which tables sessions use ---- */

void note_use(const std::vector<uint32_t> &relids) {
  DbSlot *slot = current_slot();
  if (!slot) return;
  TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  if (slot->dboid == MyDatabaseId) {
    for (uint32_t relid : relids) {
      int at = 0; /* the table's entry, or the least recent one */
      for (int i = 0; i < kDemandTables; i++) {
        if (slot->demand[i].relid == relid) {
          at = i;
          break;
        }
        if (slot->demand[i].at < slot->demand[at].at) at = i;
      }
      slot->demand[at].relid = relid;
      slot->demand[at].at = now;
    }
  }
  LWLockRelease(slot->lock);
}

TimestampTz table_last_used(DbSlot *slot, Oid relid) {
  TimestampTz at = 0;
  LWLockAcquire(slot->lock, LW_SHARED);
  for (int i = 0; i < kDemandTables; i++)
    if (slot->demand[i].relid == relid) at = slot->demand[i].at;
  LWLockRelease(slot->lock);
  return at;
}

/* ---- the cache ---- */

static CacheKey make_key(uint32 relid, const std::string &key) {
  CacheKey k;
  memset(&k, 0, sizeof k);
  k.dboid = MyDatabaseId;
  k.relid = relid;
  k.hash = hash_bytes_extended((const unsigned char *)key.data(), (int)key.size(), 0);
  return k;
}

static void arena_read(uint64 pos, void *dst, size_t len) {
  uint64 size = arena_bytes(), off = pos % size;
  size_t first = std::min<uint64>(len, size - off);
  memcpy(dst, cache_arena + off, first);
  if (first < len) memcpy((char *)dst + first, cache_arena, len - first);
}

static void arena_write(uint64 pos, const void *src, size_t len) {
  uint64 size = arena_bytes(), off = pos % size;
  size_t first = std::min<uint64>(len, size - off);
  memcpy(cache_arena + off, src, first);
  if (first < len) memcpy(cache_arena, (const char *)src + first, len - first);
}

/* Drops the oldest arena record and the hash entry still pointing at it. */
static void evict_oldest() {
  CacheRecord rec;
  arena_read(shared->arena_oldest, &rec, sizeof rec);
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &rec.key, HASH_FIND, &found);
  if (found && entry->pos == shared->arena_oldest) {
    hash_search(cache_hash, &rec.key, HASH_REMOVE, nullptr);
    shared->cache_evictions++;
  }
  shared->arena_oldest += rec.len;
}

/* Table relid's cache floor in slot (restart_capture()); the caller holds slot->lock. */
static uint64 floor_of(DbSlot *slot, Oid relid) {
  uint64 floor = slot->cache_floor;
  for (int i = 0; i < slot->nfloors; i++)
    if (slot->floors[i].relid == relid) floor = std::max(floor, slot->floors[i].floor);
  return floor;
}

/* Table relid's cache floor in this database (restart_capture()); 0 without a slot. */
static uint64 cache_floor(Oid relid) {
  DbSlot *slot = current_slot();
  if (!slot) return 0;
  LWLockAcquire(slot->lock, LW_SHARED);
  uint64 floor = slot->dboid == MyDatabaseId ? floor_of(slot, relid) : 0;
  LWLockRelease(slot->lock);
  return floor;
}

void restart_capture(uint32_t relid, uint8_t reason) {
  attach_database_slot();
  DbSlot *slot = current_slot();
  char why = (char)reason;
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  /* The marker is the floor: a record of the event log (the worker
   * notifies it like any event), so that only values holding the table
   * reload.  Without room (the queue is full of unprocessed events) the
   * seq has no record, and readers of the log reload whatever they hold. */
  uint64 floor;
  if (make_room(slot, record_size(1))) {
    floor = append_record(slot, relid, Op::Reload, &why, 1, GetCurrentTimestamp());
    slot->stats.gaps++;
  } else {
    floor = slot->next_seq++;
  }
  int at = -1; /* the table's entry, a free one, or the lowest floor's */
  for (int i = 0; i < slot->nfloors && at < 0; i++)
    if (slot->floors[i].relid == relid) at = i;
  if (at < 0 && slot->nfloors < kFloorTables) at = slot->nfloors++;
  if (at < 0) {
    at = 0;
    for (int i = 1; i < slot->nfloors; i++)
      if (slot->floors[i].floor < slot->floors[at].floor) at = i;
    /* Its table's rows below its floor stay stale: so do every table's. */
    slot->cache_floor = std::max(slot->cache_floor, slot->floors[at].floor);
  }
  slot->floors[at].relid = relid;
  slot->floors[at].floor = floor;
  Latch *latch = slot->worker_latch;
  LWLockRelease(slot->lock);
  if (latch) SetLatch(latch);
}

/*
 * The live entry for k, under cache_lock: its record read into rec, or
 * null (no entry, another key with the same hash, below the floor, or
 * unknown).
 */
static CacheEntry *cache_lookup(const CacheKey &k, const std::string &key, uint64 floor,
                                CacheRecord &rec) {
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_FIND, &found);
  if (!found) return nullptr;
  arena_read(entry->pos, &rec, sizeof rec);
  /* The key bytes rule out a 64-bit hash collision. */
  bool same = rec.keylen == key.size();
  for (uint32 off = 0; same && off < rec.keylen; off += 256) {
    char chunk[256];
    uint32 n = std::min<uint32>(256, rec.keylen - off);
    arena_read(entry->pos + sizeof rec + off, chunk, n);
    same = memcmp(chunk, key.data() + off, n) == 0;
  }
  return same && rec.version >= floor && !rec.unknown ? entry : nullptr;
}

CachedRow cache_get(uint32_t relid, const std::string &key) {
  CachedRow result;
  if (!shared) return result;
  uint64 floor = cache_floor(relid); /* before cache_lock: never two locks at once */
  CacheKey k = make_key(relid, key);
  LWLockAcquire(shared->cache_lock, LW_SHARED);
  CacheRecord rec;
  if (CacheEntry *entry = cache_lookup(k, key, floor, rec)) {
    result.found = true;
    result.exists = rec.rowlen > 0;
    result.version = rec.version;
    if (result.exists) {
      void *copy = MemoryContextAllocExtended(CurrentMemoryContext, rec.rowlen,
                                              MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
      if (copy) {
        arena_read(entry->pos + sizeof rec + rec.keylen, copy, rec.rowlen);
        result.row = (Jsonb *)copy;
      } else {
        result.found = false; /* out of memory: let the caller read the table */
      }
    }
  }
  LWLockRelease(shared->cache_lock);
  pg_atomic_fetch_add_u64(result.found ? &shared->cache_hits : &shared->cache_misses, 1);
  return result;
}

bool cache_holds(uint32_t relid, const std::string &key) {
  if (!shared) return false;
  uint64 floor = cache_floor(relid);
  CacheKey k = make_key(relid, key);
  LWLockAcquire(shared->cache_lock, LW_SHARED);
  CacheRecord rec;
  bool held = cache_lookup(k, key, floor, rec) != nullptr;
  LWLockRelease(shared->cache_lock);
  return held;
}

/* Appends a record for the key (row, tombstone or unknown) unless a newer one exists. */
static void cache_store(uint32_t relid, const std::string &key, uint64_t version, const Jsonb *row,
                        bool unknown) {
  if (!shared) return;
  if (version < cache_floor(relid)) return; /* read before the capture restarted */
  CacheKey k = make_key(relid, key);
  CacheRecord rec;
  memset(&rec, 0, sizeof rec);
  rec.key = k;
  rec.version = version;
  rec.keylen = (uint32)key.size();
  rec.rowlen = row ? VARSIZE(row) : 0;
  rec.unknown = unknown;
  rec.len = (uint32)MAXALIGN(sizeof rec + rec.keylen + rec.rowlen);
  if (rec.len > arena_bytes() / 4) return; /* a huge row is read from its table */

  LWLockAcquire(shared->cache_lock, LW_EXCLUSIVE);
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_FIND, &found);
  if (found && entry->version > version) {
    LWLockRelease(shared->cache_lock);
    return; /* a newer read is already cached */
  }
  while (shared->arena_head + rec.len - shared->arena_oldest > arena_bytes()) evict_oldest();
  entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_ENTER_NULL, &found);
  while (!entry && shared->arena_oldest < shared->arena_head) {
    evict_oldest(); /* the hash is full: make an entry free */
    entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_ENTER_NULL, &found);
  }
  if (entry) {
    entry->pos = shared->arena_head;
    entry->version = version;
    arena_write(shared->arena_head, &rec, sizeof rec);
    arena_write(shared->arena_head + sizeof rec, key.data(), rec.keylen);
    if (row) arena_write(shared->arena_head + sizeof rec + rec.keylen, row, rec.rowlen);
    shared->arena_head += rec.len;
  }
  LWLockRelease(shared->cache_lock);
}

void cache_put(uint32_t relid, const std::string &key, uint64_t version, const Jsonb *row) {
  cache_store(relid, key, version, row, false);
}

void cache_forget(uint32_t relid, const std::string &key, uint64_t version) {
  cache_store(relid, key, version, nullptr, true);
}

CacheStats cache_stats() {
  CacheStats stats = {};
  if (!shared) return stats;
  LWLockAcquire(shared->cache_lock, LW_SHARED);
  stats.entries = hash_get_num_entries(cache_hash);
  stats.bytes = shared->arena_head - shared->arena_oldest;
  stats.capacity = arena_bytes();
  stats.evictions = shared->cache_evictions;
  LWLockRelease(shared->cache_lock);
  stats.hits = pg_atomic_read_u64(&shared->cache_hits);
  stats.misses = pg_atomic_read_u64(&shared->cache_misses);
  return stats;
}

}  // namespace ectosync

namespace ectosync {

/* ---- interests of held values ---- */

/* At backend exit: the entries of this backend's held values are free again. */
static void detach_all_interests(int, Datum) {
  if (!interests) return;
  LWLockAcquire(shared->interest_lock, LW_EXCLUSIVE);
  for (int i = 0; i < settings.max_held_values; i++)
    if (interests[i].pid == MyProcPid) {
      interests[i].dboid = InvalidOid;
      interests[i].pid = 0;
    }
  LWLockRelease(shared->interest_lock);
}

int interest_attach(uint32_t &generation, bool listening) {
  static bool exit_callback = false;
  if (!interests) return -1;
  if (!exit_callback) {
    before_shmem_exit(detach_all_interests, 0);
    exit_callback = true;
  }
  int found = -1;
  Oid role = GetUserId();
  long share = role_share(settings.max_held_values);
  LWLockAcquire(shared->interest_lock, LW_EXCLUSIVE);
  long taken = 0;
  for (int i = 0; i < settings.max_held_values; i++)
    taken += OidIsValid(interests[i].dboid) && interests[i].role == role;
  for (int i = 0; i < settings.max_held_values && found < 0 && taken < share; i++) {
    InterestEntry *e = &interests[i];
    if (OidIsValid(e->dboid)) continue;
    e->dboid = MyDatabaseId;
    e->pid = MyProcPid;
    e->role = role;
    e->latch = MyLatch;
    e->listening = listening;
    generation = ++e->generation;
    SpinLockAcquire(&e->mutex);
    e->notifications = 0;
    e->interest.clear();
    e->interest.every_event = true; /* until the first publish */
    SpinLockRelease(&e->mutex);
    found = i;
  }
  LWLockRelease(shared->interest_lock);
  return found;
}

void interest_publish(int index, const Interest &interest) {
  InterestEntry *e = &interests[index];
  SpinLockAcquire(&e->mutex);
  memcpy(&e->interest, &interest, sizeof interest);
  SpinLockRelease(&e->mutex);
}

void interest_detach(int index) {
  LWLockAcquire(shared->interest_lock, LW_EXCLUSIVE);
  if (interests[index].pid == MyProcPid) {
    interests[index].dboid = InvalidOid;
    interests[index].pid = 0;
  }
  LWLockRelease(shared->interest_lock);
}

uint64_t interest_notifications(int index) {
  InterestEntry *e = &interests[index];
  SpinLockAcquire(&e->mutex);
  uint64 n = e->notifications;
  SpinLockRelease(&e->mutex);
  return n;
}

/*
 * "ectosync_held_<index>_<tag>", tag: 64 bits of SHA-256 over a key that
 * only shared memory holds, the index and the generation.  Anyone may
 * LISTEN to any channel: a name that cannot be guessed keeps another role
 * from learning when a value's rows change.
 */
std::string interest_channel(int index, uint32_t generation) {
  uint8 digest[PG_SHA256_DIGEST_LENGTH];
  int32 parts[2] = {index, (int32)generation};
  bool ok = pg_call([&] {
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (!ctx) return false;
    bool done = pg_cryptohash_init(ctx) == 0 &&
                pg_cryptohash_update(ctx, shared->channel_key, sizeof shared->channel_key) == 0 &&
                pg_cryptohash_update(ctx, (const uint8 *)parts, sizeof parts) == 0 &&
                pg_cryptohash_final(ctx, digest, sizeof digest) == 0;
    pg_cryptohash_free(ctx);
    return done;
  });
  if (!ok) throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: could not hash a channel name");
  char tag[17];
  for (int i = 0; i < 8; i++) snprintf(tag + 2 * i, 3, "%02x", digest[i]);
  return "ectosync_held_" + std::to_string(index) + "_" + tag;
}

void interest_match(const std::vector<Event> &events, std::vector<InterestHit> &hits) {
  hits.clear();
  if (!interests || events.empty()) return;
  /* Tested on a copy: the spinlock covers a memcpy, not the matching. */
  static Interest *copy = new Interest();
  hits.reserve(settings.max_held_values); /* no allocation under the lock */
  LWLockAcquire(shared->interest_lock, LW_SHARED);
  for (int i = 0; i < settings.max_held_values; i++) {
    InterestEntry *e = &interests[i];
    if (e->dboid != MyDatabaseId) continue;
    SpinLockAcquire(&e->mutex);
    memcpy(copy, &e->interest, sizeof(Interest));
    SpinLockRelease(&e->mutex);
    uint64 seq = 0;
    for (const Event &ev : events)
      if (copy->matches(ev)) seq = std::max(seq, ev.seq);
    if (seq == 0) continue;
    SpinLockAcquire(&e->mutex);
    e->notifications++;
    SpinLockRelease(&e->mutex);
    hits.push_back(InterestHit{i, e->generation, seq, e->latch, e->listening});
  }
  LWLockRelease(shared->interest_lock);
}

}  // namespace ectosync
