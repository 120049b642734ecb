/*
 * interest_registry.cpp: the interests of held values in shared memory
 * (InterestEntry[max_held_values]): taken, published and freed by holders
 * (the worker matches batches against them: interest_match.cpp).
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
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <cstring>
#include <cinttypes>
#include <random>

namespace ectosync {

/* ---- interests of held values ---- */

/* The worker of the entry's database indexes it again (interest_match.cpp). */
static void mark_changed(int i) {
  pg_atomic_fetch_or_u64(&interest_dirty[i / 64], 1ULL << (i % 64));
}

/* At backend exit: the entries of this backend's held values are free again. */
/* Frees entry i (the caller holds interest_lock exclusive). */
static void free_entry(int i) {
  mark_changed(i);
  interest_entry(i)->dboid = InvalidOid;
  interest_entry(i)->pid = 0;
  interest_dbs[i] = InvalidOid;
  while (shared->interest_high > 0 && !OidIsValid(interest_dbs[shared->interest_high - 1]))
    shared->interest_high--;
}

static void detach_all_interests(int, Datum) {
  if (!interests) return;
  LWLockAcquire(shared->interest_lock, LW_EXCLUSIVE);
  for (int i = 0; i < shared->interest_high; i++)
    if (OidIsValid(interest_dbs[i]) && interest_entry(i)->pid == MyProcPid) free_entry(i);
  LWLockRelease(shared->interest_lock);
}

namespace {

/* Whether this session called listen_changes(), and its channel's tag. */
bool session_listens = false;
uint64 session_tag = 0;

/* 64 bits of SHA-256 over the key only shared memory holds and data. */
uint64 secret_tag(const void *data, size_t size) {
  uint8 digest[PG_SHA256_DIGEST_LENGTH];
  bool ok = pg_call([&] {
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (!ctx) return false;
    bool done = pg_cryptohash_init(ctx) == 0 &&
                pg_cryptohash_update(ctx, shared->channel_key, sizeof shared->channel_key) == 0 &&
                pg_cryptohash_update(ctx, (const uint8 *)data, size) == 0 &&
                pg_cryptohash_final(ctx, digest, sizeof digest) == 0;
    pg_cryptohash_free(ctx);
    return done;
  });
  if (!ok) throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: could not hash a channel name");
  uint64 tag = 0;
  for (int i = 0; i < 8; i++) tag = tag << 8 | digest[i];
  return tag;
}

std::string hex(uint64 tag) {
  char out[17];
  snprintf(out, sizeof out, "%016" PRIx64, tag);
  return out;
}

}  // namespace

int interest_attach(uint32_t &generation, bool listening) {
  static bool exit_callback = false;
  if (!interests) return -1;
  if (!exit_callback) {
    before_shmem_exit(detach_all_interests, 0);
    exit_callback = true;
  }
  static Interest *every = [] {
    Interest *in = new Interest();
    in->clear(settings.interest_bytes * 8);
    in->every_event = true;
    return in;
  }();
  int found = -1;
  Oid role = GetUserId();
  long share = role_share(settings.max_held_values);
  LWLockAcquire(shared->interest_lock, LW_EXCLUSIVE);
  long taken = 0;
  if (share < settings.max_held_values) /* (superusers are not limited) */
    for (int i = 0; i < shared->interest_high; i++)
      taken += OidIsValid(interest_dbs[i]) && interest_entry(i)->role == role;
  for (int i = 0; i < settings.max_held_values && found < 0 && taken < share; i++) {
    if (OidIsValid(interest_dbs[i])) continue;
    InterestEntry *e = interest_entry(i);
    e->dboid = MyDatabaseId;
    interest_dbs[i] = MyDatabaseId;
    shared->interest_high = std::max(shared->interest_high, i + 1);
    e->pid = MyProcPid;
    e->role = role;
    e->latch = MyLatch;
    e->waker = MyBackendId - 1;
    e->listening = listening;
    e->session_listening = session_listens;
    e->session_tag = session_tag;
    generation = ++e->generation;
    SpinLockAcquire(&e->mutex);
    e->notifications = 0;
    e->queued = false;
    SpinLockRelease(&e->mutex);
    found = i;
  }
  /* Until the first publish, every event matches (set before the worker
   * can see the entry as this database's: it reads it under the lock). */
  if (found >= 0) interest_publish(found, *every);
  LWLockRelease(shared->interest_lock);
  return found;
}

/*
 * The holder is the only writer of its entry's interest: a seqlock lets the
 * worker read it in place, without a lock held while it matches or a copy
 * of the whole Bloom filter per entry and batch.
 */
void interest_publish(int index, const Interest &interest) {
  InterestEntry *e = interest_entry(index);
  pg_atomic_fetch_add_u32(&e->change, 1); /* odd: being written (a full barrier) */
  memcpy(&e->interest, &interest, Interest::bytes(settings.interest_bytes * 8));
  pg_write_barrier();
  pg_atomic_fetch_add_u32(&e->change, 1);
  mark_changed(index); /* (after: the worker clears the bit, then reads) */
}

bool interest_published(int index, const Interest &interest) {
  /* (only this backend writes its entry: no need for the seqlock; an
   * interest starts cleared whole, so equal ones have equal bytes) */
  return memcmp(&interest_entry(index)->interest, &interest,
                Interest::bytes(settings.interest_bytes * 8)) == 0;
}

uint64_t interest_matched_seq(int index) {
  InterestEntry *e = interest_entry(index);
  SpinLockAcquire(&e->mutex);
  /* (the highest of the batches kept: a batch taken again after a worker
   * restart, smaller, may come after one that reached further) */
  uint64 seq = 0;
  for (uint64 b = 0; b < std::min<uint64>(e->notifications, kMatchedBatches); b++)
    seq = std::max(seq, e->batch_last[b]);
  SpinLockRelease(&e->mutex);
  return seq;
}

uint64_t interest_unmatched_until(int index, uint64_t after) {
  InterestEntry *e = interest_entry(index);
  uint64_t from = after + 1;
  SpinLockAcquire(&e->mutex);
  uint64 kept = std::min<uint64>(e->notifications, kMatchedBatches);
  uint64 oldest = e->notifications - kept;
  /* (the batches before the ring's matched up to its oldest one's last) */
  if (oldest == 0 || e->batch_last[oldest % kMatchedBatches] <= after) {
    from = UINT64_MAX;
    for (uint64 b = oldest; b < e->notifications; b++) {
      int i = (int)(b % kMatchedBatches);
      if (e->batch_last[i] <= after) continue;
      from = e->batch_first[i] > after ? e->batch_first[i] : after + 1;
      break;
    }
  }
  SpinLockRelease(&e->mutex);
  return from;
}

bool interest_entry_matches(int index, const Event &ev) {
  /* (only this backend writes its entry: no need for the seqlock) */
  return interest_entry(index)->interest.matches(ev);
}

void interest_detach(int index) {
  LWLockAcquire(shared->interest_lock, LW_EXCLUSIVE);
  if (interest_entry(index)->pid == MyProcPid) free_entry(index);
  LWLockRelease(shared->interest_lock);
}

uint64_t interest_notifications(int index) {
  InterestEntry *e = interest_entry(index);
  SpinLockAcquire(&e->mutex);
  uint64 n = e->notifications;
  SpinLockRelease(&e->mutex);
  return n;
}

/* This backend's wake queue (none without shared memory, or in a process
 * without a backend id). */
static WakeQueue *my_wake_queue() {
  if (!interests || MyBackendId < 1 || MyBackendId > MaxBackends) return nullptr;
  return &wake_queues[MyBackendId - 1];
}

/*
 * The entries of this backend whose count moved since they were last taken,
 * each once, out of its wake queue: a count that moves from now on queues
 * its entry again.  False when the queue overflowed: then any entry of this
 * backend may have moved, and all of them are out of the queue again.
 */
bool interest_take_moved(std::vector<int> &moved) {
  moved.clear();
  WakeQueue *q = my_wake_queue();
  if (!q) return false;
  moved.reserve(kWakeQueueSize); /* (before entries leave the queue: nothing throws after) */
  int32 taken[kWakeQueueSize];
  SpinLockAcquire(&q->mutex);
  int count = q->count;
  bool overflowed = q->overflowed;
  memcpy(taken, q->entries, sizeof(int32) * count);
  q->count = 0;
  q->overflowed = false;
  SpinLockRelease(&q->mutex);
  auto take_out = [](int i) {
    InterestEntry *e = interest_entry(i);
    SpinLockAcquire(&e->mutex);
    e->queued = false;
    SpinLockRelease(&e->mutex);
  };
  if (overflowed) {
    LWLockAcquire(shared->interest_lock, LW_SHARED);
    for (int i = 0; i < shared->interest_high; i++)
      if (OidIsValid(interest_dbs[i]) && interest_entry(i)->pid == MyProcPid) take_out(i);
    LWLockRelease(shared->interest_lock);
    return false;
  }
  for (int k = 0; k < count; k++) {
    take_out(taken[k]); /* (an entry freed since: harmless) */
    moved.push_back(taken[k]);
  }
  return true;
}

/* Whether the worker queued an entry of this backend since it last took them. */
bool interest_moved_pending() {
  WakeQueue *q = my_wake_queue();
  if (!q) return false;
  SpinLockAcquire(&q->mutex);
  bool pending = q->count > 0 || q->overflowed;
  SpinLockRelease(&q->mutex);
  return pending;
}

/*
 * "ectosync_held_<index>_<tag>", tag: 64 bits of SHA-256 over a key that
 * only shared memory holds, the index and the generation.  Anyone may
 * LISTEN to any channel: a name that cannot be guessed keeps another role
 * from learning when a value's rows change.
 */
std::string interest_channel(int index, uint32_t generation) {
  int32 parts[2] = {index, (int32)generation};
  return "ectosync_held_" + std::to_string(index) + "_" + hex(secret_tag(parts, sizeof parts));
}

bool interest_session_listens() {
  return session_listens;
}

std::string session_channel(int pid, uint64_t tag) {
  return "ectosync_changes_" + std::to_string(pid) + "_" + hex(tag);
}

/*
 * The tag hashes the backend's pid and start time (another session that
 * gets the pid later gets another channel), and "changes" (no entry's
 * channel has the same parts).
 */
std::string interest_listen_session() {
  if (!interests)
    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "ecto_sync: listen_changes() needs ecto_sync in shared_preload_libraries");
  if (!session_listens) {
    struct {
      char what[8];
      int32 pid;
      int64 started;
    } parts;
    memset(&parts, 0, sizeof parts);
    memcpy(parts.what, "changes", 7);
    parts.pid = MyProcPid;
    parts.started = MyStartTimestamp;
    session_tag = secret_tag(&parts, sizeof parts);
    LWLockAcquire(shared->interest_lock, LW_EXCLUSIVE);
    for (int i = 0; i < shared->interest_high; i++) {
      InterestEntry *e = interest_entry(i);
      if (OidIsValid(interest_dbs[i]) && e->pid == MyProcPid) {
        e->session_tag = session_tag;
        e->session_listening = true;
      }
    }
    session_listens = true; /* (before the lock goes: attaches from now on) */
    LWLockRelease(shared->interest_lock);
  }
  return session_channel(MyProcPid, session_tag);
}

}  // namespace ectosync
