/*
 * xact_buffer.cpp: this transaction's captured events, kept in its own
 * memory until it commits, and the transaction and subtransaction
 * callbacks that hand them to the database's queue then (or drop them).
 * The row trigger (capture.cpp) appends to the buffer; keeping the buffer
 * apart keeps the trigger to reading rows.
 *
 * Nothing reaches shared memory before the commit: XACT_EVENT_COMMIT runs
 * after the transaction became visible to new snapshots, so the worker's
 * load sees it, and before its locks are released, so a transaction that
 * waited on one of its rows gets a later seq.  The RELOAD markers follow
 * once the commit's invalidation messages are sent (at_release()).
 * Writers never NOTIFY (and so never take the global lock NOTIFY holds at
 * commit): the worker does.
 *
 * The buffer is bounded by ectosync.max_xact_events: past it, the
 * transaction only remembers which tables it touched and queues a RELOAD
 * marker for each.  A rolled-back subtransaction truncates the buffer to
 * where it was when the subtransaction started.
 */
#include "capture/xact_buffer.hpp"

#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem.hpp"
#include "shmem/shmem_internal.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/trigger.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/rls.h"
}

#include <algorithm>
#include <cstring>

namespace ectosync {

/*
 * This transaction's events, in TopTransactionContext: encoded bodies back
 * to back in `bodies`; `events[i].body` holds an offset into it until the
 * commit turns it into a pointer (no allocation happens after commit).
 */
struct SubxactMark {
  SubTransactionId subid;
  int count;
  size_t bytes;
};

static struct {
  PendingEvent *events;
  int count, capacity;
  char *bodies;
  size_t bytes, bytes_capacity;
  PendingReload *reload; /* tables truncated, or of a transaction past max_xact_events */
  int nreload, reload_capacity;
  bool overflowed;
  SubxactMark *marks;
  int nmarks, marks_capacity;
  Oid *restarts; /* restart_capture_at_commit() */
  int nrestarts, restarts_capacity;
  Oid *wholesale; /* note_changed_wholesale() */
  int nwholesale, wholesale_capacity;
  Oid *fired; /* note_fired() */
  int nfired, fired_capacity;
  QueueWriter writer; /* whose share of the queue the commit takes (set before it) */
  /* The events' tables, for their RELOAD markers if the events do not fit
   * in the queue (the commit must not allocate): a table as its events
   * start, made distinct at PRE_COMMIT (events that follow it add theirs;
   * a rolled-back subtransaction's stay, which costs a marker at most). */
  uint32_t *tables;
  int ntables, tables_capacity;
} pending;

static void reset_pending() {
  memset(&pending, 0, sizeof pending);
}

/* CREATE EXTENSION asked to start this database's worker once it commits. */
static bool wake_at_commit = false;

/* Roles changed: every database's values under policies reload at commit.
 * A subtransaction rolled back keeps it set (a reload too many is safe). */
static bool roles_changed = false;

/* XACT_EVENT_COMMIT ran: the transaction is committed, and its RELOAD
 * markers are due even if a later step of the commit fails and the
 * transaction is "aborted" after all (at_release()). */
static bool committed = false;
static bool slots_in_use();

/* Grows a TopTransactionContext array to hold at least `need` elements. */
template <typename T>
static void reserve(T *&array, int &capacity, int need) {
  if (need <= capacity) return;
  int grown = std::max(need, std::max(16, capacity * 2));
  pg_call([&] {
    array = array ? (T *)repalloc(array, sizeof(T) * grown)
                  : (T *)MemoryContextAlloc(TopTransactionContext, sizeof(T) * grown);
  });
  capacity = grown;
}

void remember_reload(uint32_t relid, uint16_t why) {
  for (int i = 0; i < pending.nreload; i++)
    if (pending.reload[i].relid == relid) {
      pending.reload[i].why |= why;
      return;
    }
  reserve(pending.reload, pending.reload_capacity, pending.nreload + 1);
  pending.reload[pending.nreload++] = {relid, why};
}

/* Past ectosync.max_xact_events: keep only the tables, drop the events. */
static void overflow_to_reload() {
  for (int i = 0; i < pending.count; i++) remember_reload(pending.events[i].relid, kReloadBulk);
  pending.count = 0;
  pending.bytes = 0;
  pending.ntables = 0;
  pending.overflowed = true;
}

void buffer_event(uint32_t relid, Op op, const RawColumn *columns, int ncolumns) {
  if (!pending.overflowed && pending.count >= settings.max_xact_events) overflow_to_reload();
  if (pending.overflowed) {
    remember_reload(relid, kReloadBulk);
    return;
  }
  /* A value the event cannot carry whole (a long text key that btree
   * compression let in) would name another row: its table reloads. */
  for (int i = 0; i < ncolumns; i++)
    if ((columns[i].has_old && columns[i].old_len > kMaxEventValue) ||
        (columns[i].has_new && columns[i].new_len > kMaxEventValue)) {
      remember_reload(relid, kReloadLongValue);
      return;
    }
  size_t size = encoded_size(columns, ncolumns);
  if (pending.bytes + size > pending.bytes_capacity) {
    size_t grown = std::max(pending.bytes + size, std::max<size_t>(4096, pending.bytes * 2));
    pg_call([&] {
      pending.bodies = pending.bodies
                           ? (char *)repalloc_huge(pending.bodies, grown)
                           : (char *)MemoryContextAllocHuge(TopTransactionContext, grown);
    });
    pending.bytes_capacity = grown;
  }
  reserve(pending.events, pending.capacity, pending.count + 1);
  if (pending.ntables == 0 || pending.tables[pending.ntables - 1] != relid) {
    reserve(pending.tables, pending.tables_capacity, pending.ntables + 1);
    pending.tables[pending.ntables++] = relid;
  }
  encode_raw_columns(columns, ncolumns, pending.bodies + pending.bytes);
  pending.events[pending.count++] = {relid, op, (const char *)(uintptr_t)pending.bytes,
                                     (uint32_t)size};
  pending.bytes += size;
}

bool xact_wrote() {
  return TransactionIdIsValid(GetTopTransactionIdIfAny());
}

void note_changed_wholesale(uint32_t relid) {
  for (int i = 0; i < pending.nwholesale; i++)
    if (pending.wholesale[i] == relid) return;
  reserve(pending.wholesale, pending.wholesale_capacity, pending.nwholesale + 1);
  pending.wholesale[pending.nwholesale++] = relid;
}

bool fired_before(uint32_t trigger) {
  /* (a bulk statement fires the same trigger row after row: last first) */
  for (int i = pending.nfired - 1; i >= 0; i--)
    if (pending.fired[i] == trigger) return true;
  return false;
}

void note_fired(uint32_t trigger) {
  reserve(pending.fired, pending.fired_capacity, pending.nfired + 1);
  pending.fired[pending.nfired++] = trigger;
}

bool xact_changed(uint32_t relid) {
  if (!xact_wrote()) return false;
  for (int i = 0; i < pending.nreload; i++) {
    if (pending.reload[i].relid != relid) continue;
    /* (a table its policies read changed: only what a role under them
     * reads may hold the change) */
    if (pending.reload[i].why != kReloadPolicy) return true;
    if (pg_call([&] { return check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED; }))
      return true;
  }
  /* (its schema, or its partitions: a value read now holds rows in a shape,
   * or from partitions, that a rollback takes back, and no marker after the
   * value's seq would reload it) */
  for (int i = 0; i < pending.nwholesale; i++)
    if (pending.wholesale[i] == relid) return true;
  for (int i = 0; i < pending.count; i++)
    if (pending.events[i].relid == relid) return true;
  /* (A partitioned table's rows fire the capture trigger of their
   * partition: the running statement's are pending there.) */
  return pg_call([&] {
    if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE) return AfterTriggerPendingOnRel(relid);
    List *tables = find_all_inheritors(relid, NoLock, nullptr);
    ListCell *lc;
    foreach (lc, tables)
      if (AfterTriggerPendingOnRel(lfirst_oid(lc))) return true;
    return false;
  });
}

/* ---- transaction callbacks ---- */

/* Hands the events to the queue; runs after commit, so it cannot fail. */
static void queue_pending_events() {
  for (int i = 0; i < pending.count; i++)
    pending.events[i].body = pending.bodies + (uintptr_t)pending.events[i].body;
  queue_commit(pending.events, pending.count, pending.tables, pending.ntables, nullptr, 0,
               pending.writer);
}

/* The events' tables made distinct, before the commit (pending.tables). */
static void distinct_tables() {
  std::sort(pending.tables, pending.tables + pending.ntables);
  pending.ntables =
      (int)(std::unique(pending.tables, pending.tables + pending.ntables) - pending.tables);
}

/* After the commit: the slot was attached when they were asked for. */
static void restart_pending_captures() {
  for (int i = 0; i < pending.nrestarts && current_slot(); i++)
    restart_capture(pending.restarts[i], kReloadCapture);
}

/* Whether this transaction changed rows of watched tables (its events, a
 * bulk statement, a TRUNCATE, a row with a long value), not only what is
 * watched and how. */
static bool changed_rows() {
  if (pending.count > 0 || pending.overflowed) return true;
  for (int i = 0; i < pending.nreload; i++)
    if (pending.reload[i].why & (kReloadBulk | kReloadTruncate | kReloadLongValue)) return true;
  return false;
}

static void xact_callback(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
      /* (the catalogs, for the writer's share, can be read and memory taken until here) */
      if (pending.count > 0 || pending.nreload > 0) pending.writer = queue_writer();
      distinct_tables();
      break;
    case XACT_EVENT_PRE_PREPARE:
      if (changed_rows())
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("ecto_sync: cannot PREPARE a transaction that changed watched "
                               "tables"),
                        errdetail("Its changes could not be delivered at COMMIT PREPARED.")));
      if (pending.nreload > 0 || pending.nrestarts > 0)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("ecto_sync: cannot PREPARE a transaction that changed what is watched"),
                 errdetail("Its changes of the watches, or DDL of watched tables, make the "
                           "values that hold those tables reload at commit, which COMMIT "
                           "PREPARED could not do."),
                 errhint("Make such changes in a transaction of their own, without PREPARE.")));
      if (roles_changed && slots_in_use())
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("ecto_sync: cannot PREPARE a transaction that changed roles"),
                        errdetail("The values that row level security shows by role could not be "
                                  "reloaded at COMMIT PREPARED."),
                        errhint("Change roles in a transaction of their own, without PREPARE.")));
      break;
    case XACT_EVENT_COMMIT:
      queue_pending_events();
      pending.count = 0; /* (queued) */
      committed = true;
      if (wake_at_commit) wake_launcher();
      wake_at_commit = false;
      break; /* (the RELOAD markers: at_release(), once the caches may know) */
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      wake_at_commit = false;
      if (committed) break; /* (a commit that failed after it committed: at_release()) */
      reset_pending();
      roles_changed = false;
      break;
    default:
      break;
  }
}

static void subxact_callback(SubXactEvent event, SubTransactionId subid, SubTransactionId, void *) {
  switch (event) {
    case SUBXACT_EVENT_START_SUB:
      pg_entry([] { reserve(pending.marks, pending.marks_capacity, pending.nmarks + 1); });
      pending.marks[pending.nmarks++] = {subid, pending.count, pending.bytes};
      break;
    case SUBXACT_EVENT_COMMIT_SUB:
      if (pending.nmarks > 0 && pending.marks[pending.nmarks - 1].subid == subid) pending.nmarks--;
      break;
    case SUBXACT_EVENT_ABORT_SUB:
      if (pending.nmarks > 0 && pending.marks[pending.nmarks - 1].subid == subid) {
        SubxactMark mark = pending.marks[--pending.nmarks];
        /* After an overflow only table names remain; keeping them is safe. */
        if (!pending.overflowed) {
          pending.count = mark.count;
          pending.bytes = mark.bytes;
        }
      }
      break;
    default:
      break;
  }
}

void restart_capture_at_commit(uint32_t relid) {
  attach_database_slot();
  for (int i = 0; i < pending.nrestarts; i++)
    if (pending.restarts[i] == relid) return;
  reserve(pending.restarts, pending.restarts_capacity, pending.nrestarts + 1);
  pending.restarts[pending.nrestarts++] = relid;
}

void wake_launcher_at_commit() {
  wake_at_commit = true;
}

void roles_changed_at_commit() {
  roles_changed = true;
}

bool xact_changed_roles() {
  return roles_changed;
}

/*
 * The events are queued at XACT_EVENT_COMMIT, before the locks go (a
 * transaction that waited on one of their rows gets a later seq); the
 * RELOAD markers only once the commit's invalidation messages are sent,
 * which follow it: a holder that reloads for a marker of roles, policies,
 * a function or a schema, and accepts the messages first, then reads with
 * the new catalogs, not with what its caches kept.  A marker says "read it
 * all again", so its place among the events does not matter.
 */
static void at_release(ResourceReleasePhase phase, bool, bool is_top_level, void *) {
  if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !is_top_level) return;
  /* (committed, not is_commit: PREPARE releases as a commit, and a commit
   * that fails after XACT_EVENT_COMMIT as an abort) */
  if (committed) {
    queue_commit(nullptr, 0, nullptr, 0, pending.reload, pending.nreload, pending.writer);
    restart_pending_captures();
    if (roles_changed) queue_reload_everywhere(kReloadRoles);
  }
  reset_pending();
  roles_changed = false;
  committed = false;
}

/* Whether a database uses ecto_sync (has a slot): roles reach them all. */
static bool slots_in_use() {
  bool any = false;
  LWLockAcquire(shared->slots_lock, LW_SHARED);
  for (int i = 0; i < shared->nslots && !any; i++) any = OidIsValid(slot_at(i)->dboid);
  LWLockRelease(shared->slots_lock);
  return any;
}

void capture_init() {
  RegisterResourceReleaseCallback(at_release, nullptr);
  RegisterXactCallback(xact_callback, nullptr);
  RegisterSubXactCallback(subxact_callback, nullptr);
}

}  // namespace ectosync
