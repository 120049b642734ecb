/*
 * layout.hpp: the parts of shared memory that shmem.cpp lays out at
 * startup, for the other files of shmem/ (event_log.cpp, row_cache.cpp,
 * interest_registry.cpp).
 */
#pragma once

#include "shmem/shmem_internal.hpp"

extern "C" {
#include "postgres.h"
#include "port/atomics.h"
#include "utils/hsearch.h"
}

namespace ectosync {

extern HTAB *cache_hash;         /* the row cache's hash (row_cache.cpp) */
extern InterestEntry *interests; /* [max_held_values] (interest_registry.cpp) */
/* [max_held_values], interest_lock: each entry's database, side by side, so
 * that the worker finds its database's entries without visiting the others. */
extern Oid *interest_dbs;
/* [(max_held_values + 63) / 64] bits, atomics: entries published, taken or
 * freed since the worker of their database last indexed them. */
extern pg_atomic_uint64 *interest_dirty;
/* [MaxBackends], by backend id - 1: the entries each backend should look at. */
extern WakeQueue *wake_queues;
extern char *cache_arena; /* the row cache's arena */

/* The sizes of a database's ring and of the cache's arena, from the GUCs. */
uint64 ring_bytes();
uint64 arena_bytes();
/* A slot's event-log index and its ring. */
LogIndexEntry *slot_index(DbSlot *slot);
char *slot_ring(DbSlot *slot);

}  // namespace ectosync
