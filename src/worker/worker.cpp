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
#include "shmem/shared_internal.hpp"
#include "pg/sql_context.hpp"

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

/* ---- what the worker knows of a captured table ---- */

struct KeyCol {
  int16 attnum;
  std::string name, type; /* type: format_type_be(), for casts */
};

struct JoinEnd {
  Oid target;                    /* the referenced table */
  std::vector<int16> fk_attnums; /* in the target's primary-key order */
};

struct TableMeta {
  bool exists = false;
  Oid owner = InvalidOid; /* the worker reads the table as its owner */
  std::string qualified;  /* quoted schema.table */
  std::string display;    /* schema.table, for payloads */
  std::vector<KeyCol> pk;
  std::vector<JoinEnd> join_ends; /* empty unless it is a join table */
  SPIPlanPtr load_plan = nullptr; /* saved: the query of load_table() */
};

static std::unordered_map<Oid, TableMeta> table_meta;
/* Plans of forgotten metadata, freed at the next batch: not inside the
 * invalidation callback that forgets them. */
static std::vector<SPIPlanPtr> stale_plans;

static void forget(std::unordered_map<Oid, TableMeta>::iterator it) {
  if (it->second.load_plan) stale_plans.push_back(it->second.load_plan);
  table_meta.erase(it);
}

/* Relcache invalidation: a table's keys, name or columns may have changed. */
static void forget_table_meta(Datum, Oid relid) {
  pg_entry([&] {
    if (relid == InvalidOid) {
      while (!table_meta.empty()) forget(table_meta.begin());
    } else if (auto it = table_meta.find(relid); it != table_meta.end()) {
      forget(it);
    }
  });
}

static void free_stale_plans() {
  for (SPIPlanPtr plan : stale_plans) pg_call([&] { SPI_freeplan(plan); });
  stale_plans.clear();
}

/*
 * The key columns of rel, in index order, into out (INDEX_MAX_KEYS of
 * them); returns how many (0: none).  The key is chosen as catalog.cpp's
 * kIndexesSql chooses it: the primary key; else the REPLICA IDENTITY index;
 * else the unique, valid, immediate, non-partial, non-expression index
 * whose columns are all NOT NULL with the fewest columns, lowest oid first.
 * Plain C: it runs inside pg_call().
 */
static int row_key_of(Relation rel, int16 *out) {
  List *indexes = RelationGetIndexList(rel);
  TupleDesc desc = RelationGetDescr(rel);
  int best_rank = 3, best_n = 0;
  Oid best_oid = InvalidOid;
  ListCell *lc;
  foreach (lc, indexes) {
    Oid index_oid = lfirst_oid(lc);
    HeapTuple tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(index_oid));
    if (!HeapTupleIsValid(tuple)) continue;
    Form_pg_index index = (Form_pg_index)GETSTRUCT(tuple);
    bool usable = index->indisunique && index->indisvalid &&
                  heap_attisnull(tuple, Anum_pg_index_indpred, nullptr) &&
                  heap_attisnull(tuple, Anum_pg_index_indexprs, nullptr);
    int rank = index->indisprimary ? 0 : (index->indisreplident ? 1 : 2);
    if (usable && !index->indisprimary) {
      usable = index->indimmediate;
      for (int i = 0; usable && i < index->indnkeyatts; i++) {
        AttrNumber attnum = index->indkey.values[i];
        usable = attnum > 0 && attnum <= desc->natts && TupleDescAttr(desc, attnum - 1)->attnotnull;
      }
    }
    int n = index->indnkeyatts;
    bool better = rank < best_rank ||
                  (rank == best_rank && (n < best_n || (n == best_n && index_oid < best_oid)));
    if (usable && better) {
      best_rank = rank;
      best_n = n;
      best_oid = index_oid;
      for (int i = 0; i < n; i++) out[i] = index->indkey.values[i];
    }
    ReleaseSysCache(tuple);
  }
  list_free(indexes);
  return best_rank < 3 ? best_n : 0;
}

/* The key columns of relid in index order (empty if it has none): its
 * primary key, or the unique key that stands for it (row_key_of()). */
static std::vector<int16> primary_key_attnums(Oid relid) {
  std::vector<int16> attnums;
  Relation rel = pg_call([&] { return try_table_open(relid, AccessShareLock); });
  if (!rel) return attnums;
  int16 keys[INDEX_MAX_KEYS];
  int n = pg_call([&] { return row_key_of(rel, keys); });
  attnums.assign(keys, keys + n);
  pg_call([&] { table_close(rel, AccessShareLock); });
  return attnums;
}

/*
 * A join table (as catalog.cpp defines it for many_to_many): exactly two
 * foreign keys, each to a primary key, whose columns a unique key covers.
 * Its rows also need the rows they join loaded.
 */
static std::vector<JoinEnd> join_ends(Oid relid, const std::vector<int16> &pk) {
  struct Fk {
    Oid target;
    std::vector<int16> cols, refcols;
  };
  std::vector<Fk> fks;
  pg_call([&] {
    Relation conrel = table_open(ConstraintRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(relid));
    SysScanDesc scan =
        systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true, nullptr, 1, &key);
    HeapTuple tuple;
    while (HeapTupleIsValid(tuple = systable_getnext(scan))) {
      Form_pg_constraint con = (Form_pg_constraint)GETSTRUCT(tuple);
      /* Not the clones a foreign key to a partitioned table gets per partition. */
      if (con->contype != CONSTRAINT_FOREIGN || OidIsValid(con->conparentid)) continue;
      int nkeys;
      AttrNumber conkey[INDEX_MAX_KEYS], confkey[INDEX_MAX_KEYS];
      Oid pf[INDEX_MAX_KEYS], pp[INDEX_MAX_KEYS], ff[INDEX_MAX_KEYS];
      DeconstructFkConstraintRow(tuple, &nkeys, conkey, confkey, pf, pp, ff, nullptr, nullptr);
      Fk fk;
      fk.target = con->confrelid;
      fk.cols.assign(conkey, conkey + nkeys);
      fk.refcols.assign(confkey, confkey + nkeys);
      fks.push_back(std::move(fk));
    }
    systable_endscan(scan);
    table_close(conrel, AccessShareLock);
  });
  std::vector<JoinEnd> ends;
  if (fks.size() != 2) return ends;
  std::set<int16> both;
  for (const Fk &fk : fks) both.insert(fk.cols.begin(), fk.cols.end());
  std::set<int16> pkset(pk.begin(), pk.end());
  /* The primary key is the unique key the worker can check cheaply. */
  if (!std::includes(pkset.begin(), pkset.end(), both.begin(), both.end())) return ends;
  for (const Fk &fk : fks) {
    std::vector<int16> target_pk = primary_key_attnums(fk.target);
    if (target_pk.size() != fk.refcols.size()) return {};
    JoinEnd end;
    end.target = fk.target;
    for (int16 target_col : target_pk) {
      auto at = std::find(fk.refcols.begin(), fk.refcols.end(), target_col);
      if (at == fk.refcols.end()) return {};
      end.fk_attnums.push_back(fk.cols[at - fk.refcols.begin()]);
    }
    ends.push_back(std::move(end));
  }
  return ends;
}

static const TableMeta &meta_for(Oid relid) {
  auto found = table_meta.find(relid);
  if (found != table_meta.end()) return found->second;
  TableMeta meta;
  char *relname = pg_call([&] { return get_rel_name(relid); });
  if (relname) {
    char *nspname = pg_call([&] { return get_namespace_name(get_rel_namespace(relid)); });
    meta.exists = true;
    meta.owner = pg_call([&] {
      HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
      Oid owner =
          HeapTupleIsValid(tuple) ? ((Form_pg_class)GETSTRUCT(tuple))->relowner : InvalidOid;
      if (HeapTupleIsValid(tuple)) ReleaseSysCache(tuple);
      return owner;
    });
    meta.display = std::string(nspname) + "." + relname;
    meta.qualified = pg_call([&] { return quote_qualified_identifier(nspname, relname); });
    for (int16 attnum : primary_key_attnums(relid)) {
      KeyCol col;
      col.attnum = attnum;
      col.name = pg_call([&] { return quote_identifier(get_attname(relid, attnum, false)); });
      /* The base type, qualified and without a typmod ("pg_catalog.bpchar",
       * not "character", which means char(1)): what the key's text is cast
       * to. */
      col.type = pg_call([&] {
        return format_type_extended(getBaseType(get_atttype(relid, attnum)), -1,
                                    FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
      });
      meta.pk.push_back(std::move(col));
    }
    meta.join_ends = join_ends(relid, primary_key_attnums(relid));
  }
  return table_meta.emplace(relid, std::move(meta)).first->second;
}

/* ---- one batch ---- */

using Key = std::vector<std::optional<std::string>>;

/*
 * Per table, the keys to read; the keys whose rows the batch's own events
 * deleted (their last event in the batch took the row away), which need
 * no read, only a tombstone; and the rows that join rows of the batch
 * link (related), read only when the cache lacks them: their own events
 * keep them cached.  A std::map keeps the query order stable.
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
  if (!old_pk.empty() && old_pk != new_pk) keys[ev.header.relid].mark(old_pk, false);
  if (!new_pk.empty()) keys[ev.header.relid].mark(new_pk, true);
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
  sql += "pg_catalog.to_jsonb(t.*) FROM " + meta.qualified + " AS t WHERE ";
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
static uint64 load_table(Oid relid, const std::set<Key> &keys, uint64 version) {
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

  std::set<Key> missing = keys;
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
    std::string ckey = encode_key(key);
    pg_call([&] { cache_put(relid, ckey, version, jsonb); });
    missing.erase(key);
  }
  for (const Key &key : missing) {
    std::string ckey = encode_key(key);
    pg_call([&] { cache_put(relid, ckey, version, nullptr); });
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

static void notify(Oid relid, uint64 seq, Op op) {
  std::string channel = channel_name(relid ? relid : 0);
  std::string table = op == Op::Reload ? marker_name(relid) : display_name(relid);
  std::string payload = format_payload(shared_epoch(), seq, table, op);
  pg_call([&] { Async_Notify(channel.c_str(), payload.c_str()); });
}

/*
 * The held values (interest.hpp) that events concern: their backends'
 * latches are set at once (a holder waiting in wait_changes() wakes; the
 * batch is already marked loaded), and a holder that LISTENs gets one
 * notification on the value's channel, naming the last event that concerns
 * it, at the worker's commit.  Returns the notifications sent.
 */
static uint64 notify_held(const std::vector<Event> &events) {
  std::vector<InterestHit> hits;
  interest_match(events, hits);
  uint64 sent = 0;
  for (const InterestHit &hit : hits) {
    if (hit.latch) SetLatch(hit.latch);
    if (!hit.listening) continue;
    sent++;
    std::string channel = interest_channel(hit.index, hit.generation);
    std::string payload = "{\"event\": \"" + format_event_id(shared_epoch(), hit.seq) + "\"}";
    pg_call([&] { Async_Notify(channel.c_str(), payload.c_str()); });
  }
  return sent;
}

struct BatchResult {
  uint64 rows = 0, queries = 0, notifications = 0, not_loaded = 0;
};

/*
 * Whether a session used relid through ecto_sync within
 * ectosync.load_window, so that its changed rows are read now, ahead of the
 * sessions' calls.  Otherwise nobody may ask for them: reading them would
 * only slow the writers down (the worker shares their CPUs) and push rows
 * that are asked for out of the cache.
 */
static bool read_ahead(DbSlot *slot, Oid relid, TimestampTz now) {
  if (settings.load_window_s < 0) return true;
  TimestampTz used = pg_call([&] { return table_last_used(slot, relid); });
  return used != 0 && now - used <= (int64)settings.load_window_s * USECS_PER_SEC;
}

/* Marks keys unknown in the cache: the first call that needs such a row
 * reads it as its caller, and caches it. */
static void forget_keys(Oid relid, const std::set<Key> &keys, uint64 seq) {
  for (const Key &key : keys) {
    std::string ckey = encode_key(key);
    pg_call([&] { cache_forget(relid, ckey, seq); });
  }
}

/*
 * Whether relid's owner sees every row: under FORCE ROW LEVEL SECURITY it
 * may not, and a row it cannot see would be cached as absent for everyone.
 */
static bool owner_sees_all(Oid relid, Oid owner) {
  return pg_call([&] { return check_enable_rls(relid, owner, true) != RLS_ENABLED; });
}

/*
 * Reads and caches table relid's rows with the given keys, as the table's
 * owner in a security-restricted operation with pinned settings
 * (sql_context.hpp): what the read runs of the table's (an owner's cast to
 * json, a type's output function) runs with the owner's rights only, and
 * renders rows the same for every session.  In a subtransaction: a table
 * whose read fails (its owner revoked its own SELECT, a cast raised) rolls
 * back alone, with a WARNING naming it, and its rows are marked unknown;
 * the calls that need them read them as their callers (and fail there,
 * for the values of that table only).
 */
static void read_table_as_owner(Oid relid, const std::set<Key> &keys, uint64 version,
                                uint64 forget_seq, BatchResult &result) {
  const TableMeta &meta = meta_for(relid);
  if (!meta.exists || !owner_sees_all(relid, meta.owner)) {
    forget_keys(relid, keys, forget_seq);
    result.not_loaded += keys.size();
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
    AsRole owner(meta.owner);
    PinnedSettings pinned;
    result.rows += load_table(relid, keys, version);
    result.queries++;
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
  std::string table = display_name(relid);
  pg_call([&] {
    ereport(WARNING, (errmsg("ecto_sync worker: reading changed rows of %s failed: %s",
                             table.c_str(), failure.c_str()),
                      errdetail("Sessions that need these rows read them themselves.")));
  });
  forget_keys(relid, keys, forget_seq);
}

/* Steps 1-3 of a batch, inside the caller's transaction. */
static BatchResult run_batch(DbSlot *slot, const std::vector<QueuedEvent> &batch) {
  BatchResult result;
  free_stale_plans();
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
  uint64 version = last_seq();
  uint64 batch_end_seq = batch.back().header.seq;
  TimestampTz now = GetCurrentTimestamp();
  for (auto &entry : keys) {
    Oid relid = entry.first;
    TableKeys &table_keys = entry.second;
    /* A deleted row is known gone as of the batch's last event; a later
     * commit that brings it back is in a later batch, read then. */
    for (const Key &key : table_keys.gone) {
      std::string ckey = encode_key(key);
      pg_call([&] { cache_put(relid, ckey, batch_end_seq, nullptr); });
    }
    if (!read_ahead(slot, relid, now)) {
      forget_keys(relid, table_keys.read, batch_end_seq);
      result.not_loaded += table_keys.read.size();
      continue;
    }
    for (const Key &key : table_keys.related) {
      std::string ckey = encode_key(key);
      if (!pg_call([&] { return cache_holds(relid, ckey); })) table_keys.read.insert(key);
    }
    if (table_keys.read.empty()) continue;
    read_table_as_owner(relid, table_keys.read, version, batch_end_seq, result);
  }
  queue_mark_loaded(slot, batch.back().header.seq);
  for (const Event &event : events) {
    notify(event.relid, event.seq, event.op);
    result.notifications++;
  }
  result.notifications += notify_held(events);
  return result;
}

static void in_transaction(const std::function<void()> &body) {
  pg_call([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
  });
  try {
    body();
  } catch (const std::exception &e) {
    /* pg_call already flushed the error state; abort what is left.  The
     * message is copied first: the error's memory goes with the abort. */
    std::string message = e.what();
    pg_call([] { AbortCurrentTransaction(); });
    throw Error(ERRCODE_INTERNAL_ERROR, message);
  }
  pg_call([] {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    /* The worker's reads count in pg_stat_user_tables like anyone's. */
    pgstat_report_stat(false);
  });
}

static void report_failure(const char *what, const std::exception &e) {
  std::string message = e.what();
  ereport(WARNING, (errmsg("ecto_sync worker: %s: %s", what, message.c_str()),
                    errdetail("The tables involved get RELOAD markers.")));
}

/* Handles everything queued so far; returns the number of transactions. */
static uint64 drain(DbSlot *slot) {
  uint64 transactions = 0;
  std::vector<QueuedEvent> batch;
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    uint64 batch_end;
    int n = queue_take_batch(slot, settings.batch_size, batch, batch_end);
    if (n == 0) break;
    BatchResult result;
    try {
      in_transaction([&] { result = run_batch(slot, batch); });
    } catch (const std::exception &e) {
      report_failure("a batch failed", e);
      std::vector<uint32_t> relids;
      for (const QueuedEvent &ev : batch) relids.push_back(ev.header.relid);
      queue_add_gaps(slot, relids, kReloadFailed);
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
  std::vector<std::pair<uint32, uint64>> gaps;
  queue_take_gaps(slot, gaps);
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

static uint64 wakeups() {
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
  return taken ? nullptr : slot;
}

/*
 * Sleeps until the latch is set or timeout_ms pass, then handles what
 * signals asked for: termination (CHECK_FOR_INTERRUPTS) and a SIGHUP's
 * reload of the settings.
 */
static void wait_for_latch(long timeout_ms) {
  (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms,
                  PG_WAIT_EXTENSION);
  ResetLatch(MyLatch);
  CHECK_FOR_INTERRUPTS();
  if (ConfigReloadPending) {
    ConfigReloadPending = false;
    ProcessConfigFile(PGC_SIGHUP);
  }
}

/*
 * The worker's main loop.  Under load, commits gather between passes: a
 * pass starts at most once per ectosync.batch_delay, so that many commits
 * share one load query per table and one transaction.  Waiting only pays
 * when it gathers: at the rate of the recent passes, at least two
 * transactions must be expected within batch_delay.  Otherwise (an idle
 * or lightly loaded database) a pass starts as soon as a writer sets the
 * latch, and the delay would be latency alone.
 */
static void worker_loop(DbSlot *slot) {
  TimestampTz last_check = GetCurrentTimestamp();
  TimestampTz last_pass = 0;
  double per_ms = 0; /* transactions per millisecond, smoothed over passes */
  for (;;) {
    TimestampTz start = GetCurrentTimestamp();
    long since_ms = (start - last_pass) / 1000;
    if (since_ms < settings.batch_delay_ms && per_ms * settings.batch_delay_ms >= 2) {
      (void)WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, settings.batch_delay_ms - since_ms,
                      PG_WAIT_EXTENSION);
      start = GetCurrentTimestamp();
    }
    uint64 transactions = drain(slot);
    double interval_ms = std::max(1.0, (double)(start - last_pass) / 1000.0);
    per_ms = (per_ms + (double)transactions / interval_ms) / 2;
    last_pass = start;
    wait_for_latch(1000);
    TimestampTz now = GetCurrentTimestamp();
    if (TimestampDifferenceExceeds(last_check, now, 1000)) {
      last_check = now;
      if (!extension_exists()) return;
    }
  }
}

/* ---- the launcher ---- */

static std::vector<Oid> connectable_databases() {
  std::vector<Oid> dbs;
  pg_call([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tuple;
    while (HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection))) {
      Form_pg_database db = (Form_pg_database)GETSTRUCT(tuple);
      if (db->datallowconn && !db->datistemplate) dbs.push_back(db->oid);
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    PopActiveSnapshot();
    CommitTransactionCommand();
  });
  return dbs;
}

static BackgroundWorkerHandle *start_worker(Oid dboid) {
  BackgroundWorker worker;
  memset(&worker, 0, sizeof worker);
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker.bgw_restart_time = BGW_NEVER_RESTART; /* the launcher restarts it */
  snprintf(worker.bgw_library_name, BGW_MAXLEN, "ecto_sync");
  snprintf(worker.bgw_function_name, BGW_MAXLEN, "ectosync_worker_main");
  snprintf(worker.bgw_name, BGW_MAXLEN, "ecto_sync worker for database %u", dboid);
  snprintf(worker.bgw_type, BGW_MAXLEN, "ecto_sync worker");
  worker.bgw_main_arg = ObjectIdGetDatum(dboid);
  worker.bgw_notify_pid = MyProcPid;
  BackgroundWorkerHandle *handle = nullptr;
  if (!RegisterDynamicBackgroundWorker(&worker, &handle))
    ereport(WARNING, (errmsg("ecto_sync launcher: could not start a worker for database %u", dboid),
                      errhint("Raise max_worker_processes.")));
  return handle;
}

static bool is_absent(Oid dboid) {
  LWLockAcquire(shared->slots_lock, LW_SHARED);
  bool absent = false;
  for (int i = 0; i < shared->nabsent; i++) absent |= shared->absent_dbs[i] == dboid;
  LWLockRelease(shared->slots_lock);
  return absent;
}

static std::vector<Oid> slot_owners() {
  std::vector<Oid> owners;
  LWLockAcquire(shared->slots_lock, LW_SHARED);
  for (int i = 0; i < shared->nslots; i++) owners.push_back(slot_at(i)->dboid);
  LWLockRelease(shared->slots_lock);
  return owners;
}

/*
 * Frees the slots of databases that were dropped (their worker went with
 * them).  owners was read before dbs: a slot claimed before the database
 * list was read belongs to a database that list shows, unless it is gone.
 */
static void release_dropped(const std::vector<Oid> &owners, const std::vector<Oid> &dbs) {
  for (int i = 0; i < (int)owners.size(); i++)
    if (OidIsValid(owners[i]) && std::find(dbs.begin(), dbs.end(), owners[i]) == dbs.end())
      release_slot(slot_at(i), owners[i]);
}

static void launcher_loop() {
  std::map<Oid, BackgroundWorkerHandle *> workers;
  for (;;) {
    std::vector<Oid> owners = slot_owners();
    std::vector<Oid> dbs = connectable_databases();
    release_dropped(owners, dbs);
    for (Oid dboid : dbs) {
      auto found = workers.find(dboid);
      pid_t pid;
      bool running = found != workers.end() && found->second &&
                     GetBackgroundWorkerPid(found->second, &pid) != BGWH_STOPPED;
      if (!running && !is_absent(dboid)) {
        elog(DEBUG1, "ecto_sync launcher: starting a worker for database %u", dboid);
        workers[dboid] = start_worker(dboid);
      }
    }
    wait_for_latch(5000);
  }
}

void worker_register_launcher() {
  BackgroundWorker worker;
  memset(&worker, 0, sizeof worker);
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker.bgw_restart_time = 1;
  snprintf(worker.bgw_library_name, BGW_MAXLEN, "ecto_sync");
  snprintf(worker.bgw_function_name, BGW_MAXLEN, "ectosync_launcher_main");
  snprintf(worker.bgw_name, BGW_MAXLEN, "ecto_sync launcher");
  snprintf(worker.bgw_type, BGW_MAXLEN, "ecto_sync launcher");
  RegisterBackgroundWorker(&worker);
}

void wake_launcher() {
  LWLockAcquire(shared->slots_lock, LW_EXCLUSIVE);
  for (int i = 0; i < shared->nabsent; i++)
    if (shared->absent_dbs[i] == MyDatabaseId)
      shared->absent_dbs[i--] = shared->absent_dbs[--shared->nabsent];
  shared->wakeups++;
  Latch *latch = shared->launcher_latch;
  LWLockRelease(shared->slots_lock);
  if (latch) SetLatch(latch);
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
  CacheRegisterRelcacheCallback(forget_table_meta, (Datum)0);
  pg_entry([] {
    /* Its reads pin them anyway (sql_context.hpp): set once, they cost
     * those guards nothing per table and batch. */
    pin_settings_for_session();
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
    worker_loop(slot);
    /* The extension was dropped: nobody holds values of this database. */
    release_slot(slot, MyDatabaseId);
  });
  proc_exit(0);
}
