/*
 * worker.cpp: the launcher and the per-database workers.
 *
 * The launcher (a static background worker, connected to no database)
 * starts one worker per connectable database and starts it again when it
 * dies.  A worker that finds no ecto_sync extension in its database records
 * that and exits; CREATE EXTENSION wakes the launcher (ectosync._wake()),
 * which then starts it again.  DROP EXTENSION: the worker notices within a
 * second, frees its slot and exits.
 *
 * A worker's loop: wait on its latch (set by committing writers), then
 * drain the queue in batches.  Per batch, in one transaction:
 *   1. decode the events; collect, per table, the primary keys to read: the
 *      changed row's (old and new), and for a join-table row both rows it
 *      joins (the tag of a new posts_tags row);
 *   2. read them: one query per table per batch, by primary key, reading
 *      to_jsonb(row); store each in the cache, and a tombstone for each key
 *      that has no row.  Only for tables that sessions used lately
 *      (ectosync.load_window): other changed rows are marked unknown in
 *      the cache, and the first call that needs one reads it;
 *   3. NOTIFY one payload per event (no column values), sent together at the
 *      commit, after the cache holds the rows.
 * A batch that fails (a table dropped meanwhile, a privilege missing) is not
 * retried forever: its tables get RELOAD markers and the worker goes on.
 */
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem_internal.hpp"
#include "pg/sql_context.hpp"
#include "worker/worker_internal.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ectosync_launcher_main(Datum);
PGDLLEXPORT void ectosync_worker_main(Datum);
}

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <signal.h>
#include <string>
#include <unordered_map>
#include <vector>

namespace ectosync {

/*
 * Runs body in a transaction of its own, committed after it.  If body or
 * the commit fails (the NOTIFY queue full, say), the transaction is
 * aborted, so that the next one starts clean, and an Error says why.
 */
static void in_transaction(const std::function<void()> &body) {
  pg_call([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
  });
  try {
    body();
    pg_call([] {
      SPI_finish();
      PopActiveSnapshot();
      CommitTransactionCommand();
      /* The worker's reads count in pg_stat_user_tables like anyone's. */
      pgstat_report_stat(false);
    });
  } catch (const std::exception &e) {
    /* pg_call already flushed the error state; abort what is left.  The
     * message is copied first: the error's memory goes with the abort. */
    std::string message = e.what();
    pg_call([] { AbortCurrentTransaction(); });
    throw Error(ERRCODE_INTERNAL_ERROR, message);
  }
}

static void report_failure(const char *what, const std::exception &e) {
  std::string message = e.what();
  /* (through pg_call: it runs in a catch block, with message alive) */
  pg_call([&] {
    ereport(WARNING, (errmsg("ecto_sync worker: %s: %s", what, message.c_str()),
                      errdetail("The tables involved get RELOAD markers.")));
  });
}

/*
 * Handles everything queued so far; returns the number of transactions.
 * markers_due_ms: 0, or when a RELOAD marker held back is due.
 */
static uint64 drain(DbSlot *slot, long &markers_due_ms) {
  uint64 transactions = 0;
  std::vector<QueuedEvent> batch;
  for (;;) {
    pg_call([] { CHECK_FOR_INTERRUPTS(); }); /* (batch is alive) */
    uint64 batch_end;
    int n = queue_take_batch(slot, settings.batch_size, batch, batch_end);
    if (n == 0) break;
    BatchResult result;
    try {
      try {
        in_transaction([&] { result = run_batch(slot, batch, false); });
      } catch (const Error &) { /* in_transaction() aborted it */
        /* Again, each table alone: only the tables that fail lose their
         * reads ahead (their rows are read on demand). */
        in_transaction([&] { result = run_batch(slot, batch, true); });
      }
    } catch (const std::exception &e) {
      report_failure("a batch failed", e);
      std::vector<uint32_t> relids;
      for (const QueuedEvent &ev : batch) relids.push_back(ev.header.relid);
      /* (counted as loaded, maybe matched against no interest: no
       * value may take its interest's word for these events) */
      queue_add_gaps(slot, relids, kReloadFailed, batch.back().header.seq);
    }
    TimestampTz now = GetCurrentTimestamp();
    std::vector<int64> lags;
    for (size_t i = 0; i < batch.size(); i++) {
      lags.push_back(now - batch[i].header.committed_at);
      /* a transaction's events are queued together, with its commit time */
      if (i == 0 || batch[i].header.committed_at != batch[i - 1].header.committed_at)
        transactions++;
    }
    /* (a RELOAD marker in the queue, of a capture that started, is no captured event) */
    int events = (int)std::count_if(batch.begin(), batch.end(), [](const QueuedEvent &ev) {
      return (Op)ev.header.op != Op::Reload;
    });
    queue_finish_batch(slot, batch_end, batch.back().header.seq, events, lags);
    queue_count_loads(slot, result.rows, result.queries, result.notifications, result.not_loaded);
  }
  /* The markers are records of the event log already, where changes() and
   * sync() find them; the notifications are what listeners and stateless
   * clients wait for.  Those that do not commit (a full NOTIFY queue, the
   * worker stopped first) stay in the slot, and go with the next ones. */
  std::vector<std::pair<uint32, uint64>> gaps;
  markers_due_ms = queue_take_gaps(slot, gaps);
  if (!gaps.empty()) {
    try {
      uint64 sent = 0;
      in_transaction([&] {
        std::vector<Event> markers;
        for (const auto &[relid, seq] : gaps) {
          notify(relid, seq, Op::Reload);
          markers.push_back(Event{seq, relid, Op::Reload, 0, {}});
        }
        sent = gaps.size() + notify_held(markers);
      });
      queue_markers_sent(slot, gaps.back().second);
      queue_count_loads(slot, 0, 0, sent, 0);
    } catch (const std::exception &e) {
      report_failure("sending RELOAD markers failed", e);
    }
  }
  return transactions;
}

static bool extension_exists() {
  bool exists = false;
  in_transaction(
      [&] { exists = OidIsValid(pg_call([] { return get_extension_oid("ecto_sync", true); })); });
  return exists;
}

uint64 wakeups() {
  LWLockAcquire(shared->slots_lock, LW_SHARED);
  uint64 n = shared->wakeups;
  LWLockRelease(shared->slots_lock);
  return n;
}

/*
 * Records that dboid has no extension, unless a CREATE EXTENSION committed
 * since the worker looked (wakeups moved on): then the launcher must start
 * a worker again, and a stale "absent" would keep it from doing so.
 */
static void mark_absent(Oid dboid, uint64 wakeups_seen) {
  LWLockAcquire(shared->slots_lock, LW_EXCLUSIVE);
  bool skip = shared->wakeups != wakeups_seen;
  for (int i = 0; i < shared->nabsent; i++) skip |= shared->absent_dbs[i] == dboid;
  if (!skip && shared->nabsent < (int)lengthof(shared->absent_dbs))
    shared->absent_dbs[shared->nabsent++] = dboid;
  LWLockRelease(shared->slots_lock);
}

/* Exit callback: the slot no longer names this worker, whose pid another
 * process may get (a worker that exits with an error is started again,
 * and would take that process for a live worker of the slot). */
static void leave_slot(int, Datum arg) {
  DbSlot *slot = (DbSlot *)DatumGetPointer(arg);
  LWLockAcquire(shared->slots_lock, LW_EXCLUSIVE);
  if (slot->worker_pid == MyProcPid) {
    slot->worker_pid = 0;
    slot->worker_latch = nullptr;
  }
  LWLockRelease(shared->slots_lock);
}

/* Takes the slot of this database unless another live worker has it. */
static DbSlot *become_worker() {
  DbSlot *slot = claim_slot(MyDatabaseId);
  if (!slot) {
    ereport(WARNING, (errmsg("ecto_sync worker: no free slot for database %u", MyDatabaseId),
                      errhint("Raise ectosync.max_databases.")));
    return nullptr;
  }
  LWLockAcquire(shared->slots_lock, LW_EXCLUSIVE);
  bool taken =
      slot->worker_pid != 0 && slot->worker_pid != MyProcPid && kill(slot->worker_pid, 0) == 0;
  if (!taken) {
    slot->worker_pid = MyProcPid;
    slot->worker_latch = MyLatch;
  }
  LWLockRelease(shared->slots_lock);
  if (!taken) pg_call([&] { before_shmem_exit(leave_slot, PointerGetDatum(slot)); });
  return taken ? nullptr : slot;
}

/*
 * Sleeps until the latch is set or timeout_ms pass, then handles what
 * signals asked for: termination (CHECK_FOR_INTERRUPTS) and a SIGHUP's
 * reload of the settings.
 */
void wait_for_latch(long timeout_ms) {
  (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms,
                  PG_WAIT_EXTENSION);
  ResetLatch(MyLatch);
  /* Through pg_call: the launcher's loop owns C++ objects. */
  pg_call([] {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
  });
}

/*
 * The worker's main loop.  Under load, commits gather between passes: a
 * pass starts at most once per ectosync.batch_delay, so that many commits
 * share one load query per table and one transaction.  Waiting only pays
 * when it gathers: at the rate of the recent passes, at least two
 * transactions must be expected within batch_delay.  Otherwise (an idle
 * or lightly loaded database) a pass starts as soon as a writer sets the
 * latch, and the delay would be latency alone.  The rate is averaged over
 * about kRateWindowMs of passes, weighted by their length: two commits
 * that happen to arrive a millisecond apart say little of the next ones
 * (averaged per pass, at 200 transactions a second such a pair made the
 * next pass wait, and the median commit-to-synced latency rose by half).
 */
static constexpr double kRateWindowMs = 100;

static void worker_loop(DbSlot *slot) {
  TimestampTz last_check = GetCurrentTimestamp();
  TimestampTz last_pass = 0;
  double per_ms = 0; /* transactions per millisecond, smoothed over time */
  for (;;) {
    TimestampTz start = GetCurrentTimestamp();
    long since_ms = (start - last_pass) / 1000;
    if (since_ms < settings.batch_delay_ms && per_ms * settings.batch_delay_ms >= 2) {
      (void)WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, settings.batch_delay_ms - since_ms,
                      PG_WAIT_EXTENSION);
      start = GetCurrentTimestamp();
    }
    long markers_due_ms = 0;
    uint64 transactions = drain(slot, markers_due_ms);
    double interval_ms = std::max(1.0, (double)(start - last_pass) / 1000.0);
    double weight = std::min(1.0, interval_ms / kRateWindowMs);
    per_ms = per_ms * (1 - weight) + (double)transactions / interval_ms * weight;
    last_pass = start;
    wait_for_latch(markers_due_ms ? markers_due_ms : 1000);
    TimestampTz now = GetCurrentTimestamp();
    if (TimestampDifferenceExceeds(last_check, now, 1000)) {
      last_check = now;
      if (!extension_exists()) return;
    }
  }
}

}  // namespace ectosync

using namespace ectosync;

static void setup_signals() {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
}

extern "C" void ectosync_launcher_main(Datum) {
  setup_signals();
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
  LWLockAcquire(shared->slots_lock, LW_EXCLUSIVE);
  shared->launcher_pid = MyProcPid;
  shared->launcher_latch = MyLatch;
  LWLockRelease(shared->slots_lock);
  pg_entry([] { launcher_loop(); });
}

extern "C" void ectosync_worker_main(Datum arg) {
  Oid dboid = DatumGetObjectId(arg);
  setup_signals();
  BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
  pgstat_report_appname("ecto_sync worker");
  pg_entry([] {
    /* Its reads pin them anyway (sql_context.hpp): set once, they cost
     * those guards nothing per table and batch. */
    pin_settings_for_session();
    /* A lock that a table's owner (or a long ALTER TABLE) holds must not
     * hold the whole database's worker: a read that waits for it fails
     * alone (batch.cpp's ReadTimeout bounds the rest of a read). */
    SetConfigOption("lock_timeout", "1000", PGC_SUSET, PGC_S_OVERRIDE);
    uint64 seen = wakeups();
    if (!extension_exists()) {
      elog(DEBUG1, "ecto_sync worker: no extension in database %u", MyDatabaseId);
      mark_absent(MyDatabaseId, seen);
      return;
    }
    DbSlot *slot = become_worker();
    elog(DEBUG1, "ecto_sync worker: %s database %u",
         slot ? "serving" : "already served:", MyDatabaseId);
    if (!slot) return;
    register_read_overrun();
    note_ended_read(slot);
    worker_loop(slot);
    /* The extension was dropped: nobody holds values of this database. */
    release_slot(slot, MyDatabaseId);
  });
  proc_exit(0);
}
