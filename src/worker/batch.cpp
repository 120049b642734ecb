/*
 * batch.cpp: one batch of events (worker.cpp's header comment, steps 1-3):
 * the keys to read, the reads (as each table's owner), the cache, and the
 * notifications of tables and held values.
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
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/timeout.h"
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
#include "utils/typcache.h"
}

#include <algorithm>
#include <iterator>
#include <functional>
#include <map>
#include <set>
#include <signal.h>
#include <string>
#include <unordered_map>
#include <vector>

namespace ectosync {

/* ---- one batch ---- */

using Key = std::vector<std::optional<std::string>>;

/*
 * Per table, the keys to read; the keys whose rows the batch's own events
 * deleted (their last event in the batch took the row away), read too;
 * and the rows that join rows of the batch link (related), read only when
 * the cache lacks them: their own events keep them cached.  A std::map
 * keeps the query order stable.
 */
struct TableKeys {
  std::set<Key> read, gone, related;
  void mark(const Key &key, bool exists) {
    related.erase(key);
    (exists ? gone : read).erase(key);
    (exists ? read : gone).insert(key);
  }
  void relate(const Key &key) {
    if (!read.count(key) && !gone.count(key)) related.insert(key);
  }
};
using KeysByTable = std::map<Oid, TableKeys>;

/* Called for the batch's events in order: a key's last event decides. */
static void collect_keys(const QueuedEvent &ev, const Event &event, KeysByTable &keys) {
  const TableMeta &meta = meta_for(ev.header.relid);
  if (!meta.exists || meta.pk.empty()) return;
  Key old_pk = event.old_pk(), new_pk = event.new_pk();
  /* A key of another width than the table's: captured under a key that
   * the table no longer has (a key changed since; its marker reloads the
   * values).  Not read: load_table() reads each of its columns. */
  auto fits = [&](const Key &key) { return key.size() == meta.pk.size(); };
  if (fits(old_pk) && old_pk != new_pk) keys[ev.header.relid].mark(old_pk, false);
  if (fits(new_pk)) keys[ev.header.relid].mark(new_pk, true);
  if (event.op == Op::Delete) return;
  for (const JoinEnd &end : meta.join_ends) {
    Key target_key;
    for (int16 attnum : end.fk_attnums) {
      const ColumnChange *c = event.column(attnum);
      if (!c || !c->new_value) break;
      target_key.push_back(c->new_value);
    }
    if (target_key.size() == end.fk_attnums.size()) keys[end.target].relate(target_key);
  }
}

/*
 * The saved plan of
 *   SELECT x.* FROM ROWS FROM (unnest($1::text[]), ...) AS k(c0, ...),
 *     LATERAL (SELECT to_jsonb(t.pk) #>> '{}'..., to_jsonb(t.*) FROM tbl t
 *              WHERE t.pk0 = k.c0::type AND ... OFFSET 0) AS x
 * (every function, operator and type qualified: it runs as the table's
 * owner, see read_table()), prepared once per table (until its metadata is
 * invalidated).  The LATERAL subquery, kept from being flattened by
 * OFFSET 0, makes each key an index lookup whatever the batch size: a
 * plain join with unnest, which the planner estimates at 100 rows, may
 * become a hash join over a scan of the whole table.
 */
static SPIPlanPtr load_plan(Oid relid, const TableMeta &meta, std::vector<Oid> &types) {
  if (meta.load_plan) return meta.load_plan;
  size_t ncols = meta.pk.size();
  /* ROWS FROM: the several-array unnest() is syntax only unqualified. */
  std::string sql = "SELECT x.* FROM ROWS FROM (";
  for (size_t i = 0; i < ncols; i++)
    sql += (i ? ", " : "") + std::string("pg_catalog.unnest($") + std::to_string(i + 1) +
           "::pg_catalog.text[])";
  sql += ") AS k(";
  for (size_t i = 0; i < ncols; i++) sql += (i ? ", c" : "c") + std::to_string(i);
  sql += "), LATERAL (SELECT ";
  /* Each key as to_jsonb renders it, as events carry it (keys.hpp): the
   * cache's key. */
  for (size_t i = 0; i < ncols; i++)
    sql += "pg_catalog.to_jsonb(t." + meta.pk[i].name +
           ") OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[], ";
  /* t.*, not t: a column named t would be taken for the row. */
  sql += "pg_catalog.to_jsonb(t.*) FROM " + meta.rows + " AS t WHERE ";
  for (size_t i = 0; i < ncols; i++)
    sql += (i ? " AND t." : "t.") + meta.pk[i].name + " OPERATOR(pg_catalog.=) k.c" +
           std::to_string(i) + "::" + meta.pk[i].type;
  sql += " OFFSET 0) AS x";
  require_pinned(sql);
  SPIPlanPtr plan = pg_call([&] {
    /* Generic: each key is an index lookup whatever the arrays hold, and a
     * custom plan (which the plan cache otherwise keeps choosing, as it
     * sees the arrays' sizes) would plan the query again at every batch. */
    SPIPlanPtr prepared =
        SPI_prepare_cursor(sql.c_str(), (int)ncols, types.data(), CURSOR_OPT_GENERIC_PLAN);
    if (prepared) SPI_keepplan(prepared);
    return prepared;
  });
  if (!plan)
    throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync worker: cannot prepare the load of " +
                                            meta.display + ": " +
                                            SPI_result_code_string(SPI_result));
  table_meta[relid].load_plan = plan;
  return plan;
}

/*
 * Reads the rows of one table with the given primary keys and caches them,
 * plus a tombstone for each key without a row.  Returns rows read.
 */
static uint64 load_table(Oid relid, const std::set<Key> &keys, const ReadMark &mark) {
  const TableMeta &meta = meta_for(relid);
  if (!meta.exists || meta.pk.empty() || keys.empty()) return 0;
  size_t ncols = meta.pk.size();

  std::vector<Oid> types(ncols, TEXTARRAYOID);
  SPIPlanPtr plan = load_plan(relid, meta, types);
  std::vector<Datum> values(ncols);
  for (size_t i = 0; i < ncols; i++) {
    std::vector<Datum> elems;
    for (const Key &key : keys)
      elems.push_back(key[i] ? pg_call([&] { return CStringGetTextDatum(key[i]->c_str()); })
                             : PointerGetDatum(nullptr));
    values[i] = pg_call([&] {
      return PointerGetDatum(
          construct_array(elems.data(), (int)elems.size(), TEXTOID, -1, false, TYPALIGN_INT));
    });
  }
  /* Not read-only: each query takes a new snapshot, later than the version
   * the caller read. */
  int rc = pg_call([&] { return SPI_execute_plan(plan, values.data(), nullptr, false, 0); });
  if (rc != SPI_OK_SELECT)
    throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync worker: loading " + meta.display + " failed");
  /* (the worker's pins are PGC_S_OVERRIDE, which a SET cannot change: this
   * holds by construction, and says so should that change) */
  require_settings_unchanged();

  /* (by canonical keys: a key asked for in a foreign key's writing, "2.50",
   * is the row found as "2.5") */
  std::vector<KeyKind> kinds = key_kinds(meta);
  std::set<std::string> found;
  uint64 rows = SPI_processed;
  for (uint64 r = 0; r < rows; r++) {
    HeapTuple tuple = SPI_tuptable->vals[r];
    TupleDesc desc = SPI_tuptable->tupdesc;
    Key key;
    for (size_t i = 0; i < ncols; i++) {
      char *text = pg_call([&] { return SPI_getvalue(tuple, desc, (int)i + 1); });
      key.push_back(text ? std::optional<std::string>(text) : std::nullopt);
    }
    bool isnull;
    Datum row = pg_call([&] { return SPI_getbinval(tuple, desc, (int)ncols + 1, &isnull); });
    Jsonb *jsonb = pg_call([&] { return DatumGetJsonbP(row); });
    std::string ckey = encode_key(key, kinds);
    pg_call([&] { cache_put(relid, ckey, mark, jsonb); });
    found.insert(std::move(ckey));
  }
  for (const Key &key : keys) {
    std::string ckey = encode_key(key, kinds);
    if (!found.count(ckey)) pg_call([&] { cache_put(relid, ckey, mark, nullptr); });
  }
  return rows;
}

static std::string display_name(Oid relid) {
  if (relid == InvalidOid) return "*";
  const TableMeta &meta = meta_for(relid);
  return meta.exists ? meta.display : std::to_string(relid);
}

/*
 * The name alone, from the catalog caches: for RELOAD markers, which read
 * no rows.  meta_for() opens the table, which would wait for a transaction
 * holding a strong lock on it (a watch() that queued a marker and has not
 * committed yet, after an ALTER TABLE of its own, say).
 */
static std::string marker_name(Oid relid) {
  if (relid == InvalidOid) return "*";
  if (auto found = table_meta.find(relid); found != table_meta.end() && found->second.exists)
    return found->second.display;
  char *relname = pg_call([&] { return get_rel_name(relid); });
  if (!relname) return std::to_string(relid);
  char *nspname = pg_call([&] { return get_namespace_name(get_rel_namespace(relid)); });
  return nspname ? std::string(nspname) + "." + relname : std::to_string(relid);
}

void notify(Oid relid, uint64 seq, Op op) {
  std::string channel = channel_name(relid ? relid : 0);
  std::string table = op == Op::Reload ? marker_name(relid) : display_name(relid);
  std::string payload = format_payload(database_epoch(), seq, table, op);
  pg_call([&] { Async_Notify(channel.c_str(), payload.c_str()); });
}

/*
 * The held values (interest.hpp) that events concern: their backends'
 * latches are set at once (a holder waiting in wait_changes() wakes; the
 * batch is already marked loaded), and a holder that LISTENs gets one
 * notification on the value's channel, naming the last event that concerns
 * it, at the worker's commit; a session that called listen_changes(), one
 * on its channel for all its values.  Returns the notifications sent.
 */
uint64 notify_held(const std::vector<Event> &events) {
  std::vector<InterestHit> hits;
  interest_match(events, hits);
  return wake_held(hits);
}

uint64 wake_held(const std::vector<InterestHit> &hits) {
  uint64 sent = 0;
  auto notify = [&](const std::string &channel, uint64 seq) {
    std::string payload = "{\"event\": \"" + format_event_id(database_epoch(), seq) + "\"}";
    pg_call([&] { Async_Notify(channel.c_str(), payload.c_str()); });
    sent++;
  };
  /* sessions that listen_changes(): one notification each, the last seq */
  std::map<std::pair<pid_t, uint64>, uint64> sessions;
  for (const InterestHit &hit : hits) {
    if (hit.latch) SetLatch(hit.latch);
    if (hit.listening) notify(interest_channel(hit.index, hit.generation), hit.seq);
    if (hit.session_listening) {
      uint64 &seq = sessions[{hit.pid, hit.session_tag}];
      seq = std::max(seq, hit.seq);
    }
  }
  for (const auto &[session, seq] : sessions)
    notify(session_channel(session.first, session.second), seq);
  return sent;
}

/*
 * Whether a session used relid through ecto_sync within
 * ectosync.load_window, so that its changed rows are read now, ahead of the
 * sessions' calls.  Otherwise nobody may ask for them: reading them would
 * only slow the writers down (the worker shares their CPUs) and push rows
 * that are asked for out of the cache.
 */
/* Tables whose read failed or timed out lately, until when their changed
 * rows are left to the sessions: one owner's table (a cast that sleeps, a
 * lock held) costs the worker a timeout a minute, not one per batch. */
static std::unordered_map<Oid, TimestampTz> failing_until;
constexpr int64 kFailingPauseUs = 60 * USECS_PER_SEC;

/* A table whose read ended the worker before this one (ReadTimeout), to
 * name in a WARNING once a transaction can (run_batch()). */
static Oid ended_read = InvalidOid;

void note_ended_read(DbSlot *slot) {
  TimestampTz now = GetCurrentTimestamp();
  slot->reading_relid = InvalidOid;
  Oid relid = std::exchange(slot->overrun_relid, InvalidOid);
  if (OidIsValid(relid)) {
    /* (in the slot: two such tables in one batch would otherwise end a
     * worker each, and each next worker would forget the other's) */
    auto *entry = std::min_element(std::begin(slot->ended), std::end(slot->ended),
                                   [](const auto &a, const auto &b) { return a.until < b.until; });
    entry->relid = relid;
    entry->until = now + kFailingPauseUs;
    ended_read = relid;
  }
  for (const auto &entry : slot->ended)
    if (OidIsValid(entry.relid) && entry.until > now) failing_until[entry.relid] = entry.until;
}

static bool read_ahead(DbSlot *slot, Oid relid, TimestampTz now) {
  if (auto it = failing_until.find(relid); it != failing_until.end()) {
    if (now < it->second) return false;
    failing_until.erase(it);
  }
  if (settings.load_window_s < 0) return true;
  TimestampTz used = pg_call([&] { return table_last_used(slot, relid); });
  return used != 0 && now - used <= (int64)settings.load_window_s * USECS_PER_SEC;
}

/* Marks keys unknown in the cache: the first call that needs such a row
 * reads it as its caller, and caches it. */
static void forget_keys(Oid relid, const std::set<Key> &keys, uint64 seq) {
  std::vector<KeyKind> kinds = key_kinds(meta_for(relid));
  for (const Key &key : keys) {
    std::string ckey = encode_key(key, kinds);
    pg_call([&] { cache_forget(relid, ckey, seq); });
  }
}

/*
 * Whether to_jsonb of a value of type runs only casts to json that owner
 * may run as itself: code of a role with owner's rights, or a SECURITY
 * DEFINER function (which runs as its own owner).  to_jsonb renders a
 * domain as its base type, an array by its elements, a composite by its
 * attributes, and any other type that is not built in through its cast to
 * json if it has one (jsonb.c's jsonb_categorize_type()).  That cast is its
 * type's owner's code, and a table's owner may use a type that another
 * role owns (and casts later).  Called inside pg_call(): it keeps no C++
 * object alive.
 */
static bool json_casts_trusted(Oid type, Oid owner) {
  check_stack_depth();
  type = getBaseType(type);
  if (Oid element = get_element_type(type); OidIsValid(element))
    return json_casts_trusted(element, owner);
  if (type_is_rowtype(type)) {
    TupleDesc desc = lookup_rowtype_tupdesc(type, -1);
    bool trusted = true;
    for (int i = 0; trusted && i < desc->natts; i++)
      if (!TupleDescAttr(desc, i)->attisdropped)
        trusted = json_casts_trusted(TupleDescAttr(desc, i)->atttypid, owner);
    ReleaseTupleDesc(desc);
    return trusted;
  }
  Oid cast = InvalidOid;
  if (type < FirstNormalObjectId ||
      find_coercion_pathway(JSONOID, type, COERCION_EXPLICIT, &cast) != COERCION_PATH_FUNC ||
      !OidIsValid(cast))
    return true;
  HeapTuple proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(cast));
  if (!HeapTupleIsValid(proc)) return false;
  Form_pg_proc form = (Form_pg_proc)GETSTRUCT(proc);
  bool trusted = form->prosecdef || has_privs_of_role(form->proowner, owner);
  ReleaseSysCache(proc);
  return trusted;
}

/*
 * Whether the worker may read relid's rows as its owner: the owner sees
 * every row (under FORCE ROW LEVEL SECURITY it may not, and a row it
 * cannot see would be cached as absent for everyone), and rendering them
 * runs no other role's code with the owner's rights.  Asked at every read:
 * a cast is created, and a composite column's type altered, without an
 * invalidation of the table.  Else the sessions that need the rows read
 * them, as their own SELECT would.
 */
static bool owner_may_read(Oid relid, Oid owner) {
  return pg_call([&] {
    return check_enable_rls(relid, owner, true) != RLS_ENABLED &&
           json_casts_trusted(get_rel_type_id(relid), owner);
  });
}

/*
 * A read still running kOverrunMs after its statement timeout fired
 * swallowed the cancel (an owner's PL/pgSQL cast that catches
 * query_canceled and goes on): only ending the worker stops it.  The
 * handler does what die() does; the next interrupt check ends the worker
 * with FATAL, which no handler catches.  The slot names the table it was
 * reading (overrun_relid): the workers started next leave that table's
 * rows to the sessions for a while (note_ended_read()).
 */
constexpr int kOverrunMs = 5000;
static TimeoutId read_overrun = MAX_TIMEOUTS;
static DbSlot *batch_slot = nullptr; /* run_batch()'s */

static void on_read_overrun() {
  if (proc_exit_inprogress) return; /* (as die()) */
  /* (the table, named here: the read may end before the next interrupt
   * check, which then comes in another table's read) */
  if (batch_slot) batch_slot->overrun_relid = batch_slot->reading_relid;
  ProcDiePending = true;
  InterruptPending = true;
  SetLatch(MyLatch);
}

void register_read_overrun() {
  read_overrun = RegisterTimeout(USER_TIMEOUT, on_read_overrun);
}

/*
 * While alive, the worker's statement times out after kReadTimeoutMs: a
 * read runs code of the table's owner (a cast to json) and waits for its
 * locks, and neither may hold the whole database's worker.  (A background
 * worker's SPI arms no statement_timeout by itself; its lock waits end at
 * its lock_timeout, which the worker sets too.)  One that outlives it by
 * kOverrunMs ends the worker (above).
 */
class ReadTimeout {
 public:
  explicit ReadTimeout(Oid relid) {
    pg_call([] {
      enable_timeout_after(STATEMENT_TIMEOUT, kReadTimeoutMs);
      enable_timeout_after(read_overrun, kReadTimeoutMs + kOverrunMs);
    });
    batch_slot->reading_relid = relid;
  }
  ~ReadTimeout() {
    disable_timeout(STATEMENT_TIMEOUT, false);
    disable_timeout(read_overrun, false);
    batch_slot->reading_relid = InvalidOid;
  }
  ReadTimeout(const ReadTimeout &) = delete;
  ReadTimeout &operator=(const ReadTimeout &) = delete;
};

/* Reads relid's rows with keys as its owner (or forgets the keys). */
static void read_rows(Oid relid, const std::set<Key> &keys, const ReadMark &mark, uint64 forget_seq,
                      BatchResult &result) {
  const TableMeta &meta = meta_for(relid);
  if (!meta.exists || !owner_may_read(relid, meta.owner)) {
    forget_keys(relid, keys, forget_seq);
    result.not_loaded += keys.size();
    return;
  }
  ReadTimeout timeout(relid);
  AsRole owner(meta.owner);
  PinnedSettings pinned;
  result.rows += load_table(relid, keys, mark);
  result.queries++;
}

/*
 * Reads and caches table relid's rows with the given keys, as the table's
 * owner in a security-restricted operation with pinned settings
 * (sql_context.hpp): what the read runs of the table's (a cast to json
 * that owner_may_read() trusts, a type's output function) runs with the
 * owner's rights only, and renders rows the same for every session.
 *
 * alone: in a subtransaction of its own, so that a table whose read fails
 * (its owner revoked its own SELECT, a cast raised) rolls back alone, with
 * a WARNING naming it, and its rows are marked unknown; the calls that
 * need them read them as their callers (and fail there, for the values of
 * that table only).  A subtransaction per table and batch costs the worker
 * more than the read (the write benchmark: about 15 us per transaction),
 * so batches run without them and only a batch that failed runs again
 * with them (drain()).
 */
static void read_table_as_owner(Oid relid, const std::set<Key> &keys, const ReadMark &mark,
                                uint64 forget_seq, bool alone, BatchResult &result) {
  if (!alone) {
    read_rows(relid, keys, mark, forget_seq, result);
    return;
  }
  MemoryContext context = CurrentMemoryContext;
  ResourceOwner resource_owner = CurrentResourceOwner;
  std::string failure;
  pg_call([&] {
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(context);
  });
  try {
    /* (its metadata too: opening the table waits for its lock) */
    read_rows(relid, keys, mark, forget_seq, result);
  } catch (const std::exception &e) {
    failure = e.what();
  }
  pg_call([&] {
    if (failure.empty())
      ReleaseCurrentSubTransaction();
    else
      RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(context);
    CurrentResourceOwner = resource_owner;
  });
  if (failure.empty()) return;
  failing_until[relid] = GetCurrentTimestamp() + kFailingPauseUs;
  std::string table = display_name(relid);
  pg_call([&] {
    ereport(WARNING, (errmsg("ecto_sync worker: reading changed rows of %s failed: %s",
                             table.c_str(), failure.c_str()),
                      errdetail("Sessions that need this table's rows read them themselves "
                                "for a minute.")));
  });
  forget_keys(relid, keys, forget_seq);
}

/*
 * Steps 1-3 of a batch, inside the caller's transaction; each table's read
 * in a subtransaction of its own when tables_alone (read_table_as_owner()).
 */
BatchResult run_batch(DbSlot *slot, const std::vector<QueuedEvent> &batch, bool tables_alone) {
  BatchResult result;
  batch_slot = slot;
  if (OidIsValid(ended_read)) {
    std::string table = display_name(std::exchange(ended_read, InvalidOid));
    pg_call([&] {
      ereport(WARNING, (errmsg("ecto_sync worker: reading changed rows of %s went on %d s past its "
                               "timeout, and ended the worker before this one",
                               table.c_str(), kOverrunMs / 1000),
                        errdetail("Sessions that need this table's rows read them themselves for a "
                                  "minute.")));
    });
  }
  forget_invalidated_meta();
  std::vector<Event> events(batch.size());
  KeysByTable keys;
  for (size_t i = 0; i < batch.size(); i++) {
    events[i].seq = batch[i].header.seq;
    events[i].relid = batch[i].header.relid;
    events[i].op = (Op)batch[i].header.op;
    /* A RELOAD marker (of a capture that started) has no columns and no
     * keys: its table is not opened. */
    if (events[i].op == Op::Reload) continue;
    decode_columns(batch[i].body, events[i].columns);
    collect_keys(batch[i], events[i], keys);
  }
  /* Read the version before the queries' snapshots: each cached row then
   * reflects at least every event up to it. */
  ReadMark mark = pg_call([] { return begin_read(); });
  uint64 batch_end_seq = batch.back().header.seq;
  TimestampTz now = GetCurrentTimestamp();
  for (auto &entry : keys) {
    Oid relid = entry.first;
    TableKeys &table_keys = entry.second;
    /* A row that the batch's last event of its key deleted is read like
     * the others, not taken for gone: a transaction becomes visible before
     * it takes its seqs, so one that inserted the key again just after the
     * delete's commit (its unique check waited for nothing) may have the
     * lower seq. */
    table_keys.read.insert(table_keys.gone.begin(), table_keys.gone.end());
    if (!read_ahead(slot, relid, now)) {
      forget_keys(relid, table_keys.read, batch_end_seq);
      result.not_loaded += table_keys.read.size();
      continue;
    }
    std::vector<KeyKind> kinds = key_kinds(meta_for(relid));
    for (const Key &key : table_keys.related) {
      std::string ckey = encode_key(key, kinds);
      if (!pg_call([&] { return cache_holds(relid, ckey); })) table_keys.read.insert(key);
    }
    if (table_keys.read.empty()) continue;
    read_table_as_owner(relid, table_keys.read, mark, batch_end_seq, tables_alone, result);
  }
  /* The held values' entries count the batch before it is marked loaded:
   * wait_changes() takes an entry that counted nothing up to the loaded
   * seq for a value that nothing up to it changed. */
  std::vector<InterestHit> hits;
  interest_match(events, hits);
  queue_mark_loaded(slot, batch.back().header.seq);
  for (const Event &event : events) {
    notify(event.relid, event.seq, event.op);
    result.notifications++;
  }
  result.notifications += wake_held(hits);
  return result;
}

}  // namespace ectosync
