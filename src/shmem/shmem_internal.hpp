/*
 * shmem_internal.hpp: the shared-memory structures themselves, for
 * shmem.cpp, the worker and the stats function only.  The lock that guards
 * each field is named beside it; the protocol is in shmem.cpp's header.
 */
#pragma once

#include "core/interest.hpp"
#include "shmem/shmem.hpp"

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
}

#include <string>
#include <utility>
#include <vector>

namespace ectosync {

constexpr int kMaxGaps = 64;       /* tables with pending RELOAD markers per db */
constexpr int kLagWindow = 1024;   /* recent commit-to-notify lags kept per db */
constexpr int kDemandTables = 128; /* tables whose recent use is remembered per db */
constexpr int kFloorTables = 64;   /* tables with a cache floor of their own per db */
constexpr int kEndedReads = 16;    /* tables whose read ended a worker, remembered per db */
constexpr int kMaxUnsent = 128;    /* RELOAD markers logged and not yet notified per db */
constexpr int kQueueWriters = 64;  /* accounts of roles' queued records per db (the last shared) */
static_assert(kQueueWriters < 256, "RecordHeader.writer names an account in a byte");

/* A queued event in the ring, followed by its encoded columns. */
struct RecordHeader {
  uint32 len;      /* whole record, MAXALIGNed */
  uint32 body_len; /* encoded columns */
  uint64 seq;
  Oid relid;
  char op;
  uint8 writer;             /* its DbSlot.writers entry + 1, until processed; 0: counted in none */
  TimestampTz committed_at; /* when the writer queued it */
};

struct LogIndexEntry {
  uint64 seq; /* which seq this entry describes (seq % event_log_size) */
  uint64 pos; /* its record's ring position */
};

struct QueueStats {
  uint64 events_queued, events_dropped, events_processed, batches, gaps;
  uint64 rows_loaded, load_queries, notifications, queue_peak_bytes;
  uint64 rows_not_loaded; /* changed rows left unread: no recent use of their table */
};

struct DbSlot {
  LWLock *lock;
  Oid dboid;           /* slots_lock; InvalidOid: free */
  pid_t worker_pid;    /* slots_lock */
  Latch *worker_latch; /* slots_lock to set; read under lock */
  /* Only the slot's worker touches these, one worker after the other
   * (batch.cpp's ReadTimeout): the table whose changed rows it reads now;
   * the one whose read outlived its timeout and ended the worker (set by
   * the timeout's handler); and the tables whose reads ended a worker
   * lately, left to the sessions until then by every worker that follows. */
  Oid reading_relid, overrun_relid;
  struct {
    Oid relid;
    TimestampTz until;
  } ended[kEndedReads];
  uint64 next_seq;                /* lock: the seq the next event gets */
  uint64 head, processed, oldest; /* lock: ring byte positions */
  uint64 processed_seq;           /* lock: last seq the worker handled (notified, or unsent) */
  uint64 loaded_seq;              /* lock: the worker cached the rows up to it */
  /* lock: the last seq that the worker does not match against the held
   * values' interests before it is loaded (the RELOAD markers it queues
   * itself, seqs without a record): wait_changes() reads those itself. */
  uint64 unmatched_seq;
  /* lock: cached rows of older versions are stale, of every table (floor)
   * and of the tables whose capture started (floors; the entry of the
   * lowest floor makes room, raising cache_floor to it) */
  uint64 cache_floor;
  int nfloors;
  struct {
    Oid relid;
    uint64 floor;
  } floors[kFloorTables];
  int ngaps;                   /* lock */
  bool gap_all;                /* lock: RELOAD for every table */
  uint16 gap_all_why;          /* lock: its ReloadWhy bits */
  Oid gaps[kMaxGaps];          /* lock */
  uint16 gap_why[kMaxGaps];    /* lock: each gap's ReloadWhy bits (event.hpp) */
  TimestampTz roles_marker_at; /* lock: when a marker of roles was last logged */
  /* lock: RELOAD markers logged by queue_take_gaps() whose notifications
   * did not commit yet (queue_markers_sent()).  Here, not in the worker:
   * a worker that exits before its commit leaves them to the next one. */
  int nunsent;
  struct {
    Oid relid;
    uint64 seq;
  } unsent[kMaxUnsent];
  /* lock: the bytes of unprocessed records that each role's commits
   * queued, against its ectosync.max_role_share of the ring (QueueWriter).
   * An entry at 0 bytes is free; records name theirs (RecordHeader.writer)
   * until queue_finish_batch() passes them.  The last is shared by the
   * roles that find every other one taken (event_log.cpp's Account). */
  struct {
    Oid role;
    uint64 bytes;
  } writers[kQueueWriters];
  QueueStats stats;          /* lock */
  uint32 lag_us[kLagWindow]; /* lock */
  uint64 lag_next;           /* lock */
  /* lock: when a session last used each table through ecto_sync (load,
   * sync, hold, changes); the least recent entry makes room */
  struct {
    Oid relid;
    TimestampTz at;
  } demand[kDemandTables];
};

struct CacheKey {
  Oid dboid;
  Oid relid;
  uint64 hash; /* of the encoded primary key */
};

struct CacheEntry {
  CacheKey key;
  uint64 pos;     /* arena position of the newest record */
  uint64 version; /* that record's version */
};

/* Arena record: this header, the encoded key, then the row's jsonb. */
struct CacheRecord {
  uint32 len; /* whole record, MAXALIGNed */
  uint32 keylen;
  uint32 rowlen; /* 0: tombstone (or unknown) */
  bool unknown;  /* the row changed as of version, unread: a miss */
  CacheKey key;
  uint64 version;
};

/* The batches whose matches an interest entry remembers. */
constexpr int kMatchedBatches = 4;

/* One held value's interest (interest.hpp). */
struct InterestEntry {
  Oid dboid;         /* interest_lock; InvalidOid: free */
  pid_t pid;         /* interest_lock: the backend that holds the value */
  Oid role;          /* interest_lock: the role that holds it (ectosync.max_role_share) */
  uint32 generation; /* interest_lock: new at every attach, names the channel */
  Latch *latch;      /* interest_lock: the holder's, set when an event matches */
  bool listening;    /* interest_lock: the holder LISTENs to the entry's channel */
  /* interest_lock: the holder LISTENs to its session's channel
   * (listen_changes()), named by its pid and session_tag */
  bool session_listening;
  uint64 session_tag;
  int waker;     /* interest_lock: the holder's wake queue (its backend id - 1) */
  slock_t mutex; /* guards notifications, the batches and queued */
  /* The batches that matched it since it was taken (counted before they
   * are loaded), and the first and last event that matched in each of the
   * last kMatchedBatches of them (a ring, at notifications %
   * kMatchedBatches): interest_matched_seq(), interest_unmatched_until(). */
  uint64 notifications;
  uint64 batch_first[kMatchedBatches], batch_last[kMatchedBatches];
  /* In its holder's wake queue since its count last moved: the worker
   * queues an entry once until its holder takes it out (interest_match()). */
  bool queued;
  /* A seqlock over interest: odd while its holder rewrites it (the only
   * writer); the worker reads interest in place and matches again when
   * the count moved meanwhile (interest_registry.cpp). */
  pg_atomic_uint32 change;
  /* Last: only Interest::bytes(settings.interest_bytes * 8) of it are in
   * shared memory (entries are interest_stride() apart). */
  Interest interest;
};

/*
 * A backend's wake queue: the entries whose count the worker moved since
 * the backend last took them, so that a session holding thousands of
 * values looks at the few that moved, not at all of them
 * (interest_take_moved()).  When it is full, the worker marks it
 * overflowed instead, and the backend looks at every value once.
 */
constexpr int kWakeQueueSize = 512;
struct WakeQueue {
  slock_t mutex; /* guards the rest */
  bool overflowed;
  int count;
  int32 entries[kWakeQueueSize];
};

/* The distance between two InterestEntry in shared memory, and entry i. */
Size interest_stride();
InterestEntry *interest_entry(int i);

/* held_shared.cpp's part of shared memory, and its start (lock: held_lock). */
Size held_shared_shmem_size();
void held_shared_shmem_startup(LWLock *lock);

struct EctoShared {
  uint64 epoch;
  uint8 channel_key[32];        /* set at startup, never shown: held values' channels */
  uint8 seal_key[kSealKeySize]; /* likewise: values' seals (value/seal.cpp) */
  LWLock *slots_lock;
  LWLock *cache_lock;
  LWLock *interest_lock;
  int interest_high; /* interest_lock: entries from it on are free */
  int nslots;
  uint64 arena_head, arena_oldest; /* cache_lock */
  uint64 cache_evictions;          /* cache_lock */
  pg_atomic_uint64 cache_hits, cache_misses;
  Oid absent_dbs[64];    /* slots_lock: databases found without the extension */
  int nabsent;           /* slots_lock */
  uint64 wakeups;        /* slots_lock: CREATE EXTENSIONs so far (see worker.cpp) */
  pid_t launcher_pid;    /* slots_lock */
  Latch *launcher_latch; /* slots_lock */
};

extern EctoShared *shared;

DbSlot *slot_at(int i);
DbSlot *find_slot(Oid dboid);               /* caller holds slots_lock */
DbSlot *current_slot();                     /* MyDatabaseId's slot, or null */
DbSlot *claim_slot(Oid dboid);              /* find or take a free slot; null if none */
void release_slot(DbSlot *slot, Oid dboid); /* if dboid still owns it */
void ring_read(DbSlot *slot, uint64 pos, void *dst, size_t len);
void wake_launcher();           /* worker.cpp: CREATE EXTENSION took effect */
void wake_launcher_at_commit(); /* xact_buffer.cpp: wake_launcher() once committed */

struct QueuedEvent {
  RecordHeader header;
  std::string body;
};
/* Copies up to max_events unprocessed events; batch_end is where they end. */
int queue_take_batch(DbSlot *slot, int max_events, std::vector<QueuedEvent> &batch,
                     uint64 &batch_end);
/* After notifying: the batch's records become log-only. */
void queue_finish_batch(DbSlot *slot, uint64 batch_end, uint64 last_seq_done, int events,
                        const std::vector<int64> &lags_us);
/*
 * The batch up to seq is loaded into the cache; its notifications follow
 * at the worker's commit.  (Before the commit: a holder notified of an event
 * may ask for changes before queue_finish_batch runs.)
 */
void queue_mark_loaded(DbSlot *slot, uint64 seq);
/*
 * Pending RELOAD markers (relid 0: every table), each logged with a fresh
 * seq, and with them every marker logged before whose notification did
 * not commit: what to notify now.  Returns 0, or the milliseconds until a
 * marker of roles held back is due.
 */
long queue_take_gaps(DbSlot *slot, std::vector<std::pair<uint32, uint64>> &gaps);
/* The notifications of the markers up to seq committed. */
void queue_markers_sent(DbSlot *slot, uint64 seq);

/*
 * RELOAD markers for these tables, why: ReloadWhy bits (a batch that could
 * not be loaded).  Its events, up to unmatched_through, count as loaded
 * without having been matched against the interests (unmatched_seq), and
 * the tables' rows cached before it as misses (their cache floors).
 */
void queue_add_gaps(DbSlot *slot, const std::vector<uint32_t> &relids, uint16 why,
                    uint64 unmatched_through);
/* Worker counters. */
void queue_count_loads(DbSlot *slot, uint64 rows, uint64 queries, uint64 notifications,
                       uint64 rows_not_loaded);
/* When a session last used relid through ecto_sync (note_use()); 0: not lately. */
TimestampTz table_last_used(DbSlot *slot, Oid relid);

/* Worker: the entries of this database that events match, and the last seq matched. */
struct InterestHit {
  int index;
  uint32 generation;
  uint64 seq;
  Latch *latch;
  bool listening;
  bool session_listening;
  pid_t pid;
  uint64 session_tag;
};
void interest_match(const std::vector<Event> &events, std::vector<InterestHit> &hits);

struct CacheStats {
  uint64 entries, bytes, capacity, evictions, hits, misses;
};
CacheStats cache_stats();

}  // namespace ectosync
