/*
 * event_log.cpp: each database's ring of records, which is both its queue
 * and its event log (shmem.cpp's header comment): writers append at
 * commit, readers look events up by seq, the worker takes batches and
 * RELOAD markers; restart_capture() appends the marker that sets a cache
 * floor.
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

#include <algorithm>
#include <cstring>
#include <random>

namespace ectosync {

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

/* A RELOAD marker's body: its ReloadWhy bits, low byte first (event_lookup()). */
struct WhyBody {
  explicit WhyBody(uint16 why) : bytes{(char)(why & 0xff), (char)(why >> 8)} {}
  char bytes[2];
};

/* Frees processed records until `need` bytes fit; false if they cannot,
 * freeing none: a transaction bigger than the queue would otherwise push
 * out the log's history for nothing, and every value whose seq it held
 * would reload. */
static bool make_room(DbSlot *slot, uint64 need) {
  if (slot->head + need - slot->processed > ring_bytes()) return false;
  while (slot->head + need - slot->oldest > ring_bytes()) {
    if (slot->oldest >= slot->processed) return false;
    RecordHeader header;
    ring_read(slot, slot->oldest, &header, sizeof header);
    slot->oldest += header.len;
  }
  return true;
}

/*
 * A role's account in the queue for one commit (QueueWriter): its
 * DbSlot.writers entry (-1: a superuser's, not counted), the bytes it has
 * unprocessed, and its share.  Every record the commit appends counts in
 * it.  Its events fit within the share; its RELOAD markers (one per table
 * and transaction past the share) within twice the share, in the ring,
 * where the worker passes them at once.  Only past that do they go to the
 * gap set, which stands for every table of the database once it holds
 * kMaxGaps: a role must have some 40,000 markers unprocessed, while the
 * worker is held, to get there.  The roles that find every entry taken
 * share the last one, as one role: the bound holds however many roles
 * write.  The caller holds slot->lock exclusive.
 */
struct Account {
  int entry;
  uint64 used, share;
};

static Account open_account(DbSlot *slot, const QueueWriter &writer) {
  if (!OidIsValid(writer.role)) return {-1, 0, 0};
  constexpr int overflow = kQueueWriters - 1;
  int at = -1, free_entry = -1;
  for (int i = 0; i < overflow && at < 0; i++) {
    if (slot->writers[i].role == writer.role) at = i;
    if (free_entry < 0 && slot->writers[i].bytes == 0) free_entry = i;
  }
  if (at < 0 && free_entry >= 0) slot->writers[at = free_entry] = {writer.role, 0};
  if (at < 0) at = overflow;
  return {at, slot->writers[at].bytes, writer.share};
}

/* Whether `need` more bytes of events (or of markers) stay within the share. */
static bool within_share(const Account &account, uint64 need, bool marker = false) {
  return account.entry < 0 || account.used + need <= (marker ? 2 : 1) * account.share;
}

/* relid's entry in the gap set, or -1. */
static int gap_index(const DbSlot *slot, uint32 relid) {
  for (int i = 0; i < slot->ngaps; i++)
    if (slot->gaps[i] == relid) return i;
  return -1;
}

/* Whether the gap set takes relid's marker without standing for every table. */
static bool gap_has_room(const DbSlot *slot, uint32 relid) {
  return !slot->gap_all && (gap_index(slot, relid) >= 0 || slot->ngaps < kMaxGaps);
}

/* A RELOAD marker for relid, why: ReloadWhy bits; one per table, its bits or-ed. */
static void add_gap(DbSlot *slot, uint32 relid, uint16 why) {
  if (slot->gap_all) { /* (gaps[] is no longer taken) */
    slot->gap_all_why |= why;
    return;
  }
  if (int i = gap_index(slot, relid); i >= 0) {
    slot->gap_why[i] |= why;
    return;
  }
  if (slot->ngaps < kMaxGaps) {
    slot->gap_why[slot->ngaps] = why;
    slot->gaps[slot->ngaps++] = relid;
  } else {
    /* One marker for every table: it stands for every reason pending (a
     * policy reason alone would let the values it does not concern skip
     * a TRUNCATE). */
    if (!slot->gap_all)
      for (int i = 0; i < slot->ngaps; i++) slot->gap_all_why |= slot->gap_why[i];
    slot->gap_all = true;
    slot->gap_all_why |= why;
  }
}

/*
 * Appends one record at head with the next seq and indexes it in the event
 * log, counted in account if given.  The caller holds slot->lock exclusive
 * and made room for it (within_share(), make_room()).
 */
static uint64 append_record(DbSlot *slot, uint32 relid, Op op, const char *body, uint32 body_len,
                            TimestampTz committed_at, Account *account = nullptr) {
  RecordHeader header = {};
  header.len = record_size(body_len);
  header.body_len = body_len;
  header.relid = relid;
  header.seq = slot->next_seq++;
  header.op = (char)op;
  header.committed_at = committed_at;
  if (account && account->entry >= 0) {
    header.writer = (uint8)(account->entry + 1);
    slot->writers[account->entry].bytes += header.len;
    account->used += header.len;
  }
  ring_write(slot, slot->head, &header, sizeof header);
  if (body_len > 0) ring_write(slot, slot->head + sizeof header, body, body_len);
  LogIndexEntry *entry = &slot_index(slot)[header.seq % settings.event_log_size];
  entry->seq = header.seq;
  entry->pos = slot->head;
  slot->head += header.len;
  return header.seq;
}

static void raise_floor(DbSlot *slot, uint32 relid, uint64 floor);

/*
 * A committing transaction's RELOAD marker of table relid: a record after
 * its events, as restart_capture() writes one, with the table's cache
 * floor at its seq.  Without room, for every table (relid 0: roles
 * changed, whose markers wait their turn, roles_marker_waits()), and when
 * only a table that row level security reads changed (a policy source
 * written: one per writing transaction, which the gap set merges per
 * worker pass) while the set has room for the table, it goes to the gap
 * set.  The set holds kMaxGaps tables and then stands for every table,
 * so only those merge there: one role that truncated more of its own
 * tables at each pass than that, or turned their row level security on,
 * or wrote a policy source of as many, would make every value of the
 * database reload.  The marker counts in the writer's account.  The caller
 * holds slot->lock exclusive.
 */
static void append_marker(DbSlot *slot, uint32 relid, uint16 why, TimestampTz now,
                          Account &account) {
  WhyBody body(why);
  bool merged = relid == 0 || ((why & ~kReloadPolicy) == 0 && gap_has_room(slot, relid));
  uint32 size = record_size(sizeof body.bytes);
  if (merged || !within_share(account, size, true) || !make_room(slot, size)) {
    add_gap(slot, relid, why);
    return;
  }
  uint64 seq = append_record(slot, relid, Op::Reload, body.bytes, sizeof body.bytes, now, &account);
  slot->stats.gaps++;
  if (!row_security_only(why)) raise_floor(slot, relid, seq); /* (no row changed) */
}

QueueWriter queue_writer() {
  Oid role = GetUserId();
  if (superuser_arg(role)) return {InvalidOid, 0};
  return {role, (uint64)role_share((long)ring_bytes(), role)};
}

void queue_commit(const PendingEvent *events, int count, const uint32_t *tables, int ntables,
                  const PendingReload *reloads, int reload_count, const QueueWriter &writer) {
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
  Account account = open_account(slot, writer);
  if (count > 0 && within_share(account, need) && make_room(slot, need)) {
    for (int i = 0; i < count; i++)
      append_record(slot, events[i].relid, events[i].op, events[i].body, events[i].body_len, now,
                    &account);
    slot->stats.events_queued += count;
  } else if (count > 0) {
    /* A marker per table, as for a TRUNCATE: one transaction bigger than
     * the queue, over more tables than the gap set holds, would have made
     * it stand for every table (every value of the database reloads). */
    uint16 why = within_share(account, need) ? kReloadQueueFull : kReloadQueueShare;
    for (int i = 0; i < ntables; i++) append_marker(slot, tables[i], why, now, account);
    slot->stats.events_dropped += count;
  }
  for (int i = 0; i < reload_count; i++)
    append_marker(slot, reloads[i].relid, reloads[i].why, now, account);
  slot->stats.queue_peak_bytes =
      std::max<uint64>(slot->stats.queue_peak_bytes, slot->head - slot->processed);
  Latch *latch = slot->worker_latch;
  LWLockRelease(slot->lock);
  if (latch) SetLatch(latch);
}

LogLookup event_heads(uint64_t after, uint64_t upto, std::vector<EventHead> &out) {
  DbSlot *slot = current_slot();
  if (!slot) return LogLookup::Unknown;
  LogLookup result = LogLookup::Found;
  LWLockAcquire(slot->lock, LW_SHARED);
  for (uint64_t seq = after + 1; seq <= upto && result == LogLookup::Found; seq++) {
    LogIndexEntry entry = slot_index(slot)[seq % settings.event_log_size];
    if (seq >= slot->next_seq)
      result = LogLookup::Unknown;
    else if (entry.seq < seq)
      result = LogLookup::NoRecord; /* (entries are written in seq order) */
    else if (entry.seq != seq || entry.pos < slot->oldest)
      result = LogLookup::Expired;
    else if (out.size() == out.capacity())
      result = LogLookup::Unknown; /* (no room reserved: the caller's mistake) */
    else {
      RecordHeader header;
      ring_read(slot, entry.pos, &header, sizeof header);
      out.push_back(EventHead{seq, header.relid, (Op)header.op});
    }
  }
  LWLockRelease(slot->lock);
  return result;
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
    for (size_t i = 0; i < body.size() && i < sizeof out.why; i++)
      out.why |= (uint16)((uint8)body[i] << (8 * i));
    return LogLookup::Found;
  }
  if (!decode_columns(body, out.columns)) return LogLookup::Expired;
  return LogLookup::Found;
}

/*
 * Cached rows of relid (0: of every table) older than floor count as
 * misses from now on: a RELOAD marker at floor says its changes before were
 * not captured one by one, so the worker refreshed none of its cached rows
 * (the caller holds slot->lock exclusive).
 */
static void raise_floor(DbSlot *slot, uint32 relid, uint64 floor) {
  if (relid == 0) {
    slot->cache_floor = std::max(slot->cache_floor, floor);
    return;
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
  uint64 kept = slot->floors[at].relid == relid ? slot->floors[at].floor : 0;
  slot->floors[at].relid = relid;
  slot->floors[at].floor = std::max(kept, floor);
}

void restart_capture(uint32_t relid, uint16_t reason) {
  attach_database_slot();
  DbSlot *slot = current_slot();
  WhyBody why(reason);
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  /* The marker is the floor: a record of the event log (the worker
   * notifies it like any event), so that only values holding the table
   * reload.  Without room (the queue is full of unprocessed events) the
   * seq has no record, and readers of the log reload whatever they hold;
   * nobody would be notified of it, so the gap set makes the marker too,
   * once the worker has caught up: a client that LISTENs, or syncs on
   * notifications, hears of it then. */
  uint64 floor;
  if (make_room(slot, record_size(sizeof why.bytes))) {
    floor =
        append_record(slot, relid, Op::Reload, why.bytes, sizeof why.bytes, GetCurrentTimestamp());
    slot->stats.gaps++;
  } else {
    floor = slot->next_seq++;
    slot->unmatched_seq = floor;
    add_gap(slot, relid, reason);
  }
  if (!row_security_only(reason)) raise_floor(slot, relid, floor); /* (no row changed) */
  Latch *latch = slot->worker_latch;
  LWLockRelease(slot->lock);
  if (latch) SetLatch(latch);
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

/*
 * The records from processed to end leave their writers' accounts.  The
 * caller holds slot->lock exclusive.
 */
static void settle_accounts(DbSlot *slot, uint64 end) {
  for (uint64 pos = slot->processed; pos < end;) {
    RecordHeader header;
    ring_read(slot, pos, &header, sizeof header);
    Assert(header.writer <= kQueueWriters && header.len >= sizeof header);
    if (header.writer > 0) {
      uint64 &bytes = slot->writers[header.writer - 1].bytes;
      Assert(bytes >= header.len);
      bytes -= std::min<uint64>(bytes, header.len);
    }
    pos += header.len;
  }
}

void queue_finish_batch(DbSlot *slot, uint64 batch_end, uint64 last_seq_done, int events,
                        const std::vector<int64> &lags_us) {
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  settle_accounts(slot, batch_end);
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

/*
 * A pending marker of roles alone (relid 0, kReloadRoles) that must wait:
 * one was logged less than kRolesMarkerGapMs ago.  A role that may change
 * roles (CREATEROLE, ADMIN OPTION on a group, a database's owner) could
 * otherwise reload every value under policies, in every database, at every
 * worker pass, and fill each database's event log with markers that push
 * other roles' events out of it.  The marker waits in the slot, not lost:
 * wait_for_worker() waits for it too.
 */
static constexpr long kRolesMarkerGapMs = 100;

static bool roles_marker_waits(const DbSlot *slot, int i, TimestampTz now) {
  return !slot->gap_all && slot->gaps[i] == 0 && slot->gap_why[i] == kReloadRoles &&
         !TimestampDifferenceExceeds(slot->roles_marker_at, now, kRolesMarkerGapMs);
}

/*
 * Keeps a marker logged until its notification commits.  Past kMaxUnsent,
 * one marker of every table (relid 0) at the last seq stands for them: each
 * reader finds in the log which tables it was of.  The caller holds
 * slot->lock exclusive.
 */
static void keep_unsent(DbSlot *slot, uint32 relid, uint64 seq) {
  if (slot->nunsent == kMaxUnsent) {
    slot->unsent[0].relid = 0;
    slot->unsent[0].seq = slot->unsent[kMaxUnsent - 1].seq;
    slot->nunsent = 1;
  }
  slot->unsent[slot->nunsent].relid = relid;
  slot->unsent[slot->nunsent++].seq = seq;
}

long queue_take_gaps(DbSlot *slot, std::vector<std::pair<uint32, uint64>> &gaps) {
  gaps.clear();
  gaps.reserve(kMaxUnsent); /* no allocation under the lock */
  uint16 whys[kMaxGaps];
  long due_ms = 0;
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  /* Only when the worker has caught up: a gap's seq must follow every event
   * queued before it. */
  if (slot->processed == slot->head) {
    /* Each marker is also a record of the event log (processed at once), so
     * that changes() sees it without its notification.  Room is there:
     * every record is processed.  Without room, its seq has no record:
     * readers of the log take that as "reload". */
    TimestampTz now = GetCurrentTimestamp();
    int count = slot->gap_all ? 1 : slot->ngaps, kept = 0;
    for (int i = 0; i < count; i++) {
      if (roles_marker_waits(slot, i, now)) {
        slot->gaps[kept] = 0;
        slot->gap_why[kept++] = kReloadRoles;
        due_ms = std::max(1L, kRolesMarkerGapMs - (long)((now - slot->roles_marker_at) / 1000));
        continue;
      }
      uint32 relid = slot->gap_all ? 0 : slot->gaps[i];
      /* Its body: why (what the reasons of replies say). */
      uint16 why = whys[gaps.size()] = slot->gap_all ? slot->gap_all_why : slot->gap_why[i];
      if (why & kReloadRoles) slot->roles_marker_at = now;
      if (make_room(slot, record_size(sizeof(WhyBody::bytes)))) {
        WhyBody body(why);
        gaps.emplace_back(
            relid, append_record(slot, relid, Op::Reload, body.bytes, sizeof body.bytes, now));
        slot->processed = slot->head;
      } else {
        gaps.emplace_back(relid, slot->next_seq++);
      }
    }
    /* A marker's table gets a floor at its seq, as a capture restart does:
     * the rows its uncaptured changes touched may be cached stale (not
     * when only row level security changed: no row did). */
    for (size_t i = 0; i < gaps.size(); i++) {
      if (!row_security_only(whys[i])) raise_floor(slot, gaps[i].first, gaps[i].second);
      /* The worker matches the markers against the interests only after
       * this: until then they are unmatched, and holders look at every
       * value.  Not for a policy source's change alone: it concerns only
       * values under row level security, which every pass looks at. */
      if (whys[i] != kReloadPolicy)
        slot->unmatched_seq = std::max(slot->unmatched_seq, gaps[i].second);
    }
    slot->stats.gaps += gaps.size();
    slot->ngaps = kept;
    slot->gap_all = false;
    slot->gap_all_why = 0;
    if (!gaps.empty()) slot->processed_seq = gaps.back().second;
    for (const auto &[relid, seq] : gaps) keep_unsent(slot, relid, seq);
  }
  gaps.clear();
  for (int i = 0; i < slot->nunsent; i++)
    gaps.emplace_back(slot->unsent[i].relid, slot->unsent[i].seq);
  LWLockRelease(slot->lock);
  return due_ms;
}

void queue_markers_sent(DbSlot *slot, uint64 seq) {
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  int kept = 0;
  for (int i = 0; i < slot->nunsent; i++)
    if (slot->unsent[i].seq > seq) slot->unsent[kept++] = slot->unsent[i];
  slot->nunsent = kept;
  LWLockRelease(slot->lock);
}

void queue_reload_everywhere(uint16_t why) {
  if (!shared) return;
  LWLockAcquire(shared->slots_lock, LW_SHARED);
  for (int i = 0; i < shared->nslots; i++) {
    DbSlot *slot = slot_at(i);
    if (!OidIsValid(slot->dboid)) continue;
    LWLockAcquire(slot->lock, LW_EXCLUSIVE);
    add_gap(slot, 0, why);
    LWLockRelease(slot->lock);
    if (slot->worker_latch) SetLatch(slot->worker_latch);
  }
  LWLockRelease(shared->slots_lock);
}

void queue_add_gaps(DbSlot *slot, const std::vector<uint32_t> &relids, uint16 why,
                    uint64 unmatched_through) {
  LWLockAcquire(slot->lock, LW_EXCLUSIVE);
  /* (the floors now, not when the markers are logged, which waits for the
   * worker to catch up: the batch's rows were not read, and a value that
   * reads its events meanwhile must not take the rows cached before them) */
  for (uint32_t relid : relids) {
    add_gap(slot, relid, why);
    raise_floor(slot, relid, unmatched_through);
  }
  slot->unmatched_seq = std::max(slot->unmatched_seq, unmatched_through);
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

}  // namespace ectosync
