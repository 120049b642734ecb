/*
 * catalog_scan.hpp: the rows of a system catalog whose oid column equals a
 * value, through one of the catalog's indexes (a systable scan under the
 * catalog snapshot): how ecto_sync reads what it needs of a table (its
 * policies, keys, foreign keys, triggers) without opening the table, and
 * so without waiting for its lock.  And a table's owner, from the syscache.
 */
#pragma once

extern "C" {
#include "postgres.h"
#include "access/genam.h"
#include "access/htup.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

namespace ectosync {

/*
 * Calls each(tuple, desc) for every row of catalog whose column key equals
 * value, found through index.  It runs PostgreSQL code that may raise:
 * call it where a longjmp skips no C++ object (inside pg_call(), or in
 * plain C), and let each own none across its own PostgreSQL calls.
 */
template <typename Each>
void scan_catalog(Oid catalog, Oid index, AttrNumber key, Oid value, Each &&each) {
  Relation rel = table_open(catalog, AccessShareLock);
  ScanKeyData skey;
  ScanKeyInit(&skey, key, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(value));
  SysScanDesc scan = systable_beginscan(rel, index, true, nullptr, 1, &skey);
  HeapTuple tuple;
  while (HeapTupleIsValid(tuple = systable_getnext(scan))) each(tuple, RelationGetDescr(rel));
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
}

/* The owner of table relid; InvalidOid if there is no such table.  May
 * raise, as scan_catalog(). */
inline Oid table_owner(Oid relid) {
  HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
  if (!HeapTupleIsValid(tuple)) return InvalidOid;
  Oid owner = ((Form_pg_class)GETSTRUCT(tuple))->relowner;
  ReleaseSysCache(tuple);
  return owner;
}

}  // namespace ectosync
