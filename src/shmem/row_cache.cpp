/*
 * row_cache.cpp: which tables sessions use (note_use(): the worker reads a
 * table's rows ahead only then), and the row cache: a FIFO arena of row
 * records and a hash to the newest (shmem.cpp's header comment).
 */
#include "shmem/shmem.hpp"

#include "pg/catalog_scan.hpp"
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

/*
 * Whose share of the arena a table's records count in: its owner's
 * ectosync.max_role_share (role InvalidOid: not counted, a superuser's
 * table or a share of the whole arena).  One role's tables, with rows as
 * wide or as many as it likes, would otherwise evict every other role's
 * rows.  Reads the catalogs: taken before cache_lock.
 */
struct CacheOwner {
  Oid role;
  uint64 share;
};

static CacheOwner cache_owner(Oid relid) {
  Oid owner = table_owner(relid);
  if (!OidIsValid(owner) || superuser_arg(owner)) return {InvalidOid, 0};
  uint64 share = (uint64)role_share((long)arena_bytes(), owner);
  if (share >= arena_bytes()) return {InvalidOid, 0};
  return {owner, share};
}

/*
 * owner's entry in cache_owners, taken if need be (-1: not counted): one
 * never taken, else one at 0 bytes.  The roles that find none share the
 * last one, as one role: the bound holds however many roles own tables.
 * An entry taken from roles that dropped records forgets their drops, so
 * reads begun before the last drop are not stored (read_before_drop()).
 * The caller holds cache_lock exclusive.
 */
static int owner_entry(const CacheOwner &owner) {
  if (!OidIsValid(owner.role)) return -1;
  constexpr int overflow = kCacheOwners - 1;
  int free_entry = -1;
  for (int i = 0; i < overflow; i++) {
    const auto &e = shared->cache_owners[i];
    if (e.role == owner.role) return i;
    bool better = free_entry < 0 || OidIsValid(shared->cache_owners[free_entry].role);
    if (e.bytes == 0 && better) free_entry = i;
  }
  if (free_entry < 0) return overflow;
  auto &e = shared->cache_owners[free_entry];
  if (e.dropped_at != 0 || shared->cache_owners[overflow].dropped_at != 0)
    shared->owners_assigned_at = shared->cache_drops;
  e = {owner.role, 0, 0};
  return free_entry;
}

/* What a record takes of its owner's account: its bytes, or the arena's
 * bytes per hash entry if more (narrow records run out of entries first). */
static uint64 record_charge(uint32 len) {
  return std::max<uint64>(len, cache_entry_bytes());
}

/* rec, no longer its key's newest (replaced or evicted), leaves its
 * owner's account.  The caller holds cache_lock exclusive. */
static void settle(CacheRecord &rec) {
  if (rec.owner == 0) return;
  uint64 &bytes = shared->cache_owners[rec.owner - 1].bytes;
  uint64 charge = record_charge(rec.len);
  Assert(bytes >= charge);
  bytes -= std::min(bytes, charge);
  rec.owner = 0;
}

/* Drops the oldest arena record and the hash entry still pointing at it. */
static void evict_oldest() {
  CacheRecord rec;
  arena_read(shared->arena_oldest, &rec, sizeof rec);
  settle(rec);
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &rec.key, HASH_FIND, &found);
  if (found && entry->pos == shared->arena_oldest) {
    hash_search(cache_hash, &rec.key, HASH_REMOVE, nullptr);
    shared->cache_evictions++;
  }
  shared->arena_oldest += rec.len;
}

/*
 * Whether a record of len bytes for key k takes owner_at past its share,
 * the key's newest record (if its) replaced.  The caller holds cache_lock.
 */
static bool past_share(int owner_at, uint64 share, const CacheKey &k, uint32 len) {
  if (owner_at < 0) return false;
  uint64 bytes = shared->cache_owners[owner_at].bytes;
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_FIND, &found);
  if (found) {
    CacheRecord old;
    arena_read(entry->pos, &old, sizeof old);
    if (old.owner == owner_at + 1) bytes -= std::min(bytes, record_charge(old.len));
  }
  return bytes + record_charge(len) > share;
}

/* Whether making room would evict a record that another role's table (or
 * a superuser's) still uses: the oldest is its key's newest.  The caller
 * holds cache_lock. */
static bool oldest_is_others(int owner_at) {
  CacheRecord rec;
  arena_read(shared->arena_oldest, &rec, sizeof rec);
  if (rec.owner == owner_at + 1) return false;
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &rec.key, HASH_FIND, &found);
  return found && entry->pos == shared->arena_oldest;
}

/*
 * A record past its owner's share that would evict another role's:
 * nothing is appended.  The key's record, if any, is unknown from version
 * on (in place); else the owner's reads begun before now are not stored,
 * as one of them may be older than what this record said.  The caller
 * holds cache_lock exclusive.
 */
static void drop(const CacheKey &k, int owner_at, uint64 version) {
  bool found;
  CacheEntry *entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_FIND, &found);
  if (!found) {
    shared->cache_owners[owner_at].dropped_at = ++shared->cache_drops;
    return;
  }
  CacheRecord old;
  arena_read(entry->pos, &old, sizeof old);
  old.unknown = true;
  old.version = version;
  arena_write(entry->pos, &old, sizeof old);
  entry->version = version;
}

/* Whether a read of owner_at's table begun at mark may be older than a
 * record dropped since (drop()). */
static bool read_before_drop(int owner_at, const ReadMark &mark) {
  if (owner_at < 0) return false;
  return mark.drops <
         std::max(shared->cache_owners[owner_at].dropped_at, shared->owners_assigned_at);
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
    mark.drops = shared->cache_drops;
    LWLockRelease(shared->cache_lock);
  }
  mark.version = last_seq(); /* after the head: see ReadMark */
  return mark;
}

/*
 * Appends a record for the key (row, tombstone or unknown) unless a newer
 * one exists.  A row or tombstone read (mark) is stored as unknown if the
 * arena has evicted past where its head stood when the read began, or a
 * record of its table's owner was dropped since: a newer record of the
 * key may have been and gone, and the read would then pass for the key's
 * latest state.  Past its owner's share, the record takes no other role's
 * room (drop()).
 */
static void cache_store(uint32_t relid, const std::string &key, uint64_t version, const Jsonb *row,
                        bool unknown, const ReadMark *mark) {
  if (!shared) return;
  if (version < cache_floor(relid)) return; /* read before the capture restarted */
  CacheOwner owner = cache_owner(relid);
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
  int owner_at = owner_entry(owner);
  rec.rowlen = row ? VARSIZE(row) : 0;
  rec.unknown = unknown;
  rec.len = (uint32)MAXALIGN(sizeof rec + rec.keylen + rec.rowlen);
  /* A huge row is read from its table, and so is one read before what the
   * arena has evicted: what is cached is that it is unknown, so that an
   * older record of its key is no longer served. */
  bool stale = mark && (shared->arena_oldest > mark->arena || read_before_drop(owner_at, *mark));
  if (rec.len > arena_bytes() / 4 || stale) {
    row = nullptr;
    rec.rowlen = 0;
    rec.unknown = true;
    rec.len = (uint32)MAXALIGN(sizeof rec + rec.keylen);
  }
  bool past = past_share(owner_at, owner.share, k, rec.len);
  entry = nullptr;
  while (!entry) {
    bool full = shared->arena_head + rec.len - shared->arena_oldest > arena_bytes();
    if (!full) entry = (CacheEntry *)hash_search(cache_hash, &k, HASH_ENTER_NULL, &found);
    if (entry || (!full && shared->arena_oldest == shared->arena_head)) break;
    if (past && oldest_is_others(owner_at)) {
      drop(k, owner_at, version);
      LWLockRelease(shared->cache_lock);
      return;
    }
    evict_oldest(); /* room in the arena, or (the hash is full) an entry */
  }
  if (entry) {
    if (found) {
      /* (the key's record before, no longer its newest) */
      CacheRecord old;
      arena_read(entry->pos, &old, sizeof old);
      settle(old);
      arena_write(entry->pos, &old, sizeof old);
    }
    if (owner_at >= 0) {
      rec.owner = (uint8)(owner_at + 1);
      shared->cache_owners[owner_at].bytes += record_charge(rec.len);
    }
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
  cache_store(relid, key, mark.version, row, false, &mark);
}

void cache_forget(uint32_t relid, const std::string &key, uint64_t version) {
  cache_store(relid, key, version, nullptr, true, nullptr);
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
