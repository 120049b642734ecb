/*
 * table_meta.cpp: what the worker knows of a captured table (its key
 * columns, owner, names, join ends, the saved query that reads its rows),
 * read from the catalog once and forgotten on relcache invalidation.
 */
#include "pg/catalog_scan.hpp"
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem_internal.hpp"
#include "pg/sql_context.hpp"
#include "pg/table_names.hpp"
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

std::unordered_map<Oid, TableMeta> table_meta;

/*
 * Relcache invalidations seen since the last batch.  The callback only
 * notes them: it runs inside PostgreSQL's invalidation processing, where
 * nothing may raise (nor allocate, which may), and a batch holds
 * references into table_meta across the queries that process them.
 */
static Oid invalidated[64];
static int ninvalidated = 0;
static bool all_invalidated = false;

/* Relcache invalidation: a table's keys, name, owner or columns may have changed. */
void forget_table_meta(Datum, Oid relid) {
  if (relid == InvalidOid || ninvalidated == (int)lengthof(invalidated))
    all_invalidated = true;
  else
    invalidated[ninvalidated++] = relid;
}

/* Schema invalidation: a renamed schema sends no relcache invalidation of
 * its tables, whose names the metadata holds (pg/table_names.cpp). */
static void forget_all_table_meta(Datum, int, uint32) {
  all_invalidated = true;
}

static void forget(std::unordered_map<Oid, TableMeta>::iterator it) {
  if (it->second.load_plan) pg_call([&] { SPI_freeplan(it->second.load_plan); });
  table_meta.erase(it);
}

void forget_invalidated_meta() {
  if (all_invalidated) {
    while (!table_meta.empty()) forget(table_meta.begin());
  } else {
    for (int i = 0; i < ninvalidated; i++)
      if (auto it = table_meta.find(invalidated[i]); it != table_meta.end()) forget(it);
  }
  ninvalidated = 0;
  all_invalidated = false;
}

/* Whether column attnum of relid is NOT NULL (from the catalog cache). */
static bool attribute_not_null(Oid relid, AttrNumber attnum) {
  HeapTuple tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
  if (!HeapTupleIsValid(tuple)) return false;
  bool not_null = ((Form_pg_attribute)GETSTRUCT(tuple))->attnotnull;
  ReleaseSysCache(tuple);
  return not_null;
}

/*
 * The key columns of relid, in index order, into out (INDEX_MAX_KEYS of
 * them); returns how many (0: none).  The key is chosen as catalog.cpp's
 * kIndexesSql chooses it: the primary key; else the REPLICA IDENTITY index;
 * else the unique, valid, immediate, non-partial, non-expression index
 * whose columns are all NOT NULL with the fewest columns, lowest oid first.
 * From pg_index, without opening the table: a batch must not wait for the
 * lock of a table that an ALTER TABLE holds (every table of the batch
 * would fail with it).  Plain C: it runs inside pg_call().
 */
static int row_key_of(Oid relid, int16 *out) {
  int best_rank = 3, best_n = 0;
  Oid best_oid = InvalidOid;
  scan_catalog(IndexRelationId, IndexIndrelidIndexId, Anum_pg_index_indrelid, relid,
               [&](HeapTuple tuple, TupleDesc) {
                 Form_pg_index index = (Form_pg_index)GETSTRUCT(tuple);
                 Oid index_oid = index->indexrelid;
                 bool usable = index->indisunique && index->indisvalid && index->indislive &&
                               heap_attisnull(tuple, Anum_pg_index_indpred, nullptr) &&
                               heap_attisnull(tuple, Anum_pg_index_indexprs, nullptr);
                 int rank = index->indisprimary ? 0 : (index->indisreplident ? 1 : 2);
                 if (usable) { /* (a deferrable primary key neither: catalog.cpp) */
                   usable = index->indimmediate;
                   for (int i = 0; usable && i < index->indnkeyatts; i++) {
                     AttrNumber attnum = index->indkey.values[i];
                     usable = attnum > 0 && attribute_not_null(relid, attnum);
                   }
                 }
                 int n = index->indnkeyatts;
                 bool better =
                     rank < best_rank ||
                     (rank == best_rank && (n < best_n || (n == best_n && index_oid < best_oid)));
                 if (usable && better) {
                   best_rank = rank;
                   best_n = n;
                   best_oid = index_oid;
                   for (int i = 0; i < n; i++) out[i] = index->indkey.values[i];
                 }
               });
  return best_rank < 3 ? best_n : 0;
}

/* The key columns of relid in index order (empty if it has none): its
 * primary key, or the unique key that stands for it (row_key_of()). */
static std::vector<int16> primary_key_attnums(Oid relid) {
  int16 keys[INDEX_MAX_KEYS];
  int n = pg_call([&] { return row_key_of(relid, keys); });
  return std::vector<int16>(keys, keys + n);
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
    scan_catalog(ConstraintRelationId, ConstraintRelidTypidNameIndexId, Anum_pg_constraint_conrelid,
                 relid, [&](HeapTuple tuple, TupleDesc) {
                   Form_pg_constraint con = (Form_pg_constraint)GETSTRUCT(tuple);
                   /* Not the clones a foreign key to a partitioned table gets per partition. */
                   if (con->contype != CONSTRAINT_FOREIGN || OidIsValid(con->conparentid)) return;
                   int nkeys;
                   AttrNumber conkey[INDEX_MAX_KEYS], confkey[INDEX_MAX_KEYS];
                   Oid pf[INDEX_MAX_KEYS], pp[INDEX_MAX_KEYS], ff[INDEX_MAX_KEYS];
                   DeconstructFkConstraintRow(tuple, &nkeys, conkey, confkey, pf, pp, ff, nullptr,
                                              nullptr);
                   Fk fk;
                   fk.target = con->confrelid;
                   fk.cols.assign(conkey, conkey + nkeys);
                   fk.refcols.assign(confkey, confkey + nkeys);
                   fks.push_back(std::move(fk));
                 });
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

const TableMeta &meta_for(Oid relid) {
  auto found = table_meta.find(relid);
  if (found != table_meta.end()) return found->second;
  TableMeta meta;
  char *relname = pg_call([&] { return get_rel_name(relid); });
  if (relname) {
    char *nspname = pg_call([&] { return get_namespace_name(get_rel_namespace(relid)); });
    meta.exists = true;
    meta.owner = pg_call([&] { return table_owner(relid); });
    meta.display = std::string(nspname) + "." + relname;
    meta.qualified = pg_call([&] { return quote_qualified_identifier(nspname, relname); });
    /* (not the rows of tables that inherit from it: catalog.cpp's quoted_table()) */
    bool partitioned = pg_call([&] { return get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE; });
    meta.rows = named_table(relid, meta.qualified, !partitioned);
    for (int16 attnum : primary_key_attnums(relid)) {
      KeyCol col;
      col.attnum = attnum;
      col.name = pg_call([&] { return quote_identifier(get_attname(relid, attnum, false)); });
      /* The base type, qualified and without a typmod ("pg_catalog.bpchar",
       * not "character", which means char(1)): what the key's text is cast
       * to. */
      Oid base = pg_call([&] { return getBaseType(get_atttype(relid, attnum)); });
      col.type = pg_call([&] {
        return format_type_extended(base, -1,
                                    FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
      });
      /* (only Number and Char have texts that canonical_key_text() changes) */
      col.kind = base == NUMERICOID  ? KeyKind::Number
                 : base == BPCHAROID ? KeyKind::Char
                                     : KeyKind::Text;
      meta.pk.push_back(std::move(col));
    }
    meta.join_ends = join_ends(relid, primary_key_attnums(relid));
  }
  return table_meta.emplace(relid, std::move(meta)).first->second;
}

std::vector<KeyKind> key_kinds(const TableMeta &meta) {
  std::vector<KeyKind> kinds;
  for (const KeyCol &col : meta.pk) kinds.push_back(col.kind);
  return kinds;
}

/* From _PG_init: the worker forgets the metadata of tables that change,
 * and all of it when a schema does. */
void worker_init() {
  CacheRegisterRelcacheCallback(forget_table_meta, (Datum)0);
  CacheRegisterSyscacheCallback(NAMESPACEOID, forget_all_table_meta, (Datum)0);
}

}  // namespace ectosync
