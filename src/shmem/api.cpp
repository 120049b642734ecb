/*
 * api.cpp: the SQL functions that show the pipeline's state: stats(),
 * wait_for_worker(), and the test helper _events_since().
 */
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem_internal.hpp"

extern "C" {
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <cinttypes>
#include <vector>

using namespace ectosync;

/* A consistent copy of this database's slot, taken under its lock. */
static bool snapshot_slot(DbSlot &copy) {
  DbSlot *slot = current_slot();
  if (!slot) return false;
  LWLockAcquire(slot->lock, LW_SHARED);
  copy = *slot;
  LWLockRelease(slot->lock);
  return true;
}

static double lag_percentile_ms(const DbSlot &slot, double fraction) {
  int n = (int)std::min<uint64>(slot.lag_next, kLagWindow);
  if (n == 0) return 0;
  std::vector<uint32> lags(slot.lag_us, slot.lag_us + n);
  size_t at = std::min<size_t>(n - 1, (size_t)(fraction * n));
  std::nth_element(lags.begin(), lags.begin() + at, lags.end());
  return lags[at] / 1000.0;
}

/* ectosync.stats(): one row of counters for this database and the cache. */
ECTOSYNC_FUNCTION(ectosync_stats) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("ectosync.stats() must be called in a context that accepts a row")));
  DbSlot *slot = (DbSlot *)palloc0(sizeof(DbSlot));
  bool attached = snapshot_slot(*slot);
  CacheStats cache = cache_stats();
  pid_t worker_pid = 0;
  if (attached) {
    LWLockAcquire(shared->slots_lock, LW_SHARED);
    worker_pid = current_slot() ? current_slot()->worker_pid : 0;
    LWLockRelease(shared->slots_lock);
  }
  double p50 = 0, p99 = 0;
  [&] {
    p50 = lag_percentile_ms(*slot, 0.50);
    p99 = lag_percentile_ms(*slot, 0.99);
  }();
  char epoch[32];
  snprintf(epoch, sizeof epoch, "%016" PRIx64, database_epoch());
  uint64 last = attached ? slot->next_seq - 1 : 0;
  const QueueStats &q = slot->stats;
  Datum values[25];
  bool nulls[25] = {};
  int i = 0;
  values[i++] = CStringGetTextDatum(epoch);
  values[i++] = Int32GetDatum(worker_pid);
  values[i++] = Int64GetDatum(last);
  values[i++] = Int64GetDatum(slot->processed_seq);
  values[i++] = Int64GetDatum(q.events_queued + q.events_dropped);
  values[i++] = Int64GetDatum(q.events_queued);
  values[i++] = Int64GetDatum(q.events_dropped);
  values[i++] = Int64GetDatum(q.events_processed);
  values[i++] = Int64GetDatum(slot->head - slot->processed);
  values[i++] = Int64GetDatum(q.queue_peak_bytes);
  values[i++] = Int64GetDatum(q.batches);
  values[i++] = Int64GetDatum(q.load_queries);
  values[i++] = Int64GetDatum(q.rows_loaded);
  values[i++] = Int64GetDatum(q.notifications);
  values[i++] = Int64GetDatum(q.gaps);
  values[i++] = Int64GetDatum(cache.entries);
  values[i++] = Int64GetDatum(cache.bytes);
  values[i++] = Int64GetDatum(cache.capacity);
  values[i++] = Int64GetDatum(cache.hits);
  values[i++] = Int64GetDatum(cache.misses);
  values[i++] = Int64GetDatum(cache.evictions);
  values[i++] = Float8GetDatum(p50);
  values[i++] = Float8GetDatum(p99);
  values[i++] = Int64GetDatum(slot->lag_next);
  /* 0.2.0 added: rows the worker left unread (ectosync.load_window) */
  if (desc->natts > i) values[i++] = Int64GetDatum(q.rows_not_loaded);
  Assert(i == desc->natts);
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* Called by CREATE EXTENSION: take a slot, start this database's worker. */
ECTOSYNC_FUNCTION(ectosync_wake) {
  (void)fcinfo;
  attach_database_slot();
  /* The worker must see the extension: wake the launcher after commit. */
  wake_launcher_at_commit();
  PG_RETURN_VOID();
}

/*
 * ectosync.wait_for_worker(timeout): waits until the worker has notified
 * every event queued in this database before the call.  False on timeout.
 */
ECTOSYNC_FUNCTION(ectosync_wait_for_worker) {
  int timeout_ms = PG_GETARG_INT32(0);
  uint64 target = last_seq();
  TimestampTz start = GetCurrentTimestamp();
  for (;;) {
    DbSlot *slot = current_slot();
    if (!slot) PG_RETURN_BOOL(target == 0);
    LWLockAcquire(slot->lock, LW_SHARED);
    bool done = slot->processed_seq >= target && slot->processed == slot->head &&
                slot->ngaps == 0 && !slot->gap_all && slot->nunsent == 0;
    LWLockRelease(slot->lock);
    if (done) PG_RETURN_BOOL(true);
    if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), timeout_ms)) PG_RETURN_BOOL(false);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

/* "1,7": a primary key as text, for people reading test output. */
static std::string key_text(const std::vector<std::optional<std::string>> &key) {
  std::string text;
  for (size_t i = 0; i < key.size(); i++) text += (i ? "," : "") + key[i].value_or("NULL");
  return text;
}

/* "post_id=1>2, author_id=3": the non-key columns an event carries. */
static std::string changes_text(const Event &event) {
  std::string text;
  for (const ColumnChange &c : event.columns) {
    if (c.is_pk) continue;
    char *name = pg_call([&] { return get_attname(event.relid, c.attnum, true); });
    text += text.empty() ? "" : ", ";
    text += name ? name : std::to_string(c.attnum);
    text += "=";
    if (c.has_old) text += c.old_value.value_or("NULL");
    if (c.has_old && c.has_new) text += ">";
    if (c.has_new) text += c.new_value.value_or("NULL");
  }
  return text;
}

/*
 * ectosync._events_since(seq): the logged events after seq, in order, once
 * the worker has handled them: seq, table, op, the row's primary key (new,
 * or old for a DELETE), the other key columns (old>new) and the
 * notification payload.  Tests use it to see
 * what was captured and to replay events without LISTEN.
 */
ECTOSYNC_FUNCTION(ectosync_events_since) {
  uint64 after = (uint64)PG_GETARG_INT64(0);
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  InitMaterializedSRF(fcinfo, 0);
  DirectFunctionCall1(ectosync_wait_for_worker, Int32GetDatum(10000));
  uint64 last = last_seq();
  for (uint64 seq = after + 1; seq <= last; seq++) {
    Datum values[6];
    bool nulls[6] = {};
    bool found = [&]() -> bool {
      Event event;
      if (event_lookup(seq, event) != LogLookup::Found) return false;
      char *relname = pg_call([&] { return get_rel_name(event.relid); });
      char *nspname =
          relname ? pg_call([&] { return get_namespace_name(get_rel_namespace(event.relid)); })
                  : nullptr;
      std::string table = event.relid == 0 ? "*" /* a RELOAD marker of every table */
                          : relname        ? std::string(nspname) + "." + relname
                                           : "?";
      std::string key = key_text(event.op == Op::Delete ? event.old_pk() : event.new_pk());
      std::string payload = format_payload(database_epoch(), seq, table, event.op);
      std::string changes = changes_text(event);
      pg_call([&] {
        values[0] = Int64GetDatum(seq);
        values[1] = CStringGetTextDatum(table.c_str());
        values[2] = CStringGetTextDatum(op_name(event.op));
        values[3] = CStringGetTextDatum(key.c_str());
        values[4] = CStringGetTextDatum(changes.c_str());
        values[5] = CStringGetTextDatum(payload.c_str());
      });
      return true;
    }();
    if (found) tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return (Datum)0;
}
