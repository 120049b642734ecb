/*
 * row_cache.cpp: which tables sessions use (note_use(): the worker reads a
 * table's rows ahead only then), and the row cache: a FIFO arena of row
 * records and a hash to the newest (shmem.cpp's header comment).
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

ReadMark begin_read() {
  ReadMark mark;
  if (shared) {
    LWLockAcquire(shared->cache_lock, LW_SHARED);
    mark.arena = shared->arena_head;
    LWLockRelease(shared->cache_lock);
  }
  mark.version = last_seq(); /* after the head: see ReadMark */
  return mark;
}

/*
 * Appends a record for the key (row, tombstone or unknown) unless a newer
 * one exists.  A row or tombstone read since arena position `since` is
 * stored as unknown if the arena has evicted past that position: a newer
 * record of the key may have been and gone, and the read would then pass
 * for the key's latest state.
 */
static void cache_store(uint32_t relid, const std::string &key, uint64_t version, const Jsonb *row,
                        bool unknown, uint64_t since) {
  if (!shared) return;
  if (version < cache_floor(relid)) return; /* read before the capture restarted */
  CacheKey k = make_key(relid, key);
  CacheRecord rec;
  memset(&rec, 0, sizeof rec);
  rec.key = k;
  rec.version = version;
  rec.keylen = (uint32)key.size();

  LWLockAcquire(shared->cache_lock, LW_EXCLUSIVE);
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_FIND, &found);
  if (found && entry->version > version) {
    LWLockRelease(shared->cache_lock);
    return; /* a newer read is already cached */
  }
  rec.rowlen = row ? VARSIZE(row) : 0;
  rec.unknown = unknown;
  rec.len = (uint32)MAXALIGN(sizeof rec + rec.keylen + rec.rowlen);
  /* A huge row is read from its table, and so is one read before what the
   * arena has evicted: what is cached is that it is unknown, so that an
   * older record of its key is no longer served. */
  if (rec.len > arena_bytes() / 4 || shared->arena_oldest > since) {
    row = nullptr;
    rec.rowlen = 0;
    rec.unknown = true;
    rec.len = (uint32)MAXALIGN(sizeof rec + rec.keylen);
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

void cache_put(uint32_t relid, const std::string &key, const ReadMark &mark, const Jsonb *row) {
  cache_store(relid, key, mark.version, row, false, mark.arena);
}

void cache_forget(uint32_t relid, const std::string &key, uint64_t version) {
  cache_store(relid, key, version, nullptr, true, UINT64_MAX);
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
