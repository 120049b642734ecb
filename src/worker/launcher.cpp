/*
 * launcher.cpp: the launcher's loop (worker.cpp's header comment): one
 * worker per connectable database, started again when it dies.
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

/* ---- the launcher ---- */

/* The databases: all of them, and those a worker may connect to. */
struct Databases {
  std::vector<Oid> all, connectable;
};

static Databases read_databases() {
  Databases dbs;
  pg_call([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tuple;
    while (HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection))) {
      Form_pg_database db = (Form_pg_database)GETSTRUCT(tuple);
      dbs.all.push_back(db->oid);
      if (db->datallowconn && !db->datistemplate) dbs.connectable.push_back(db->oid);
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
 * dbs are all the databases: one that no longer allows connections (or
 * became a template) still has its sessions and its worker, whose events
 * the slot holds.
 */
static void release_dropped(const std::vector<Oid> &owners, const std::vector<Oid> &dbs) {
  for (int i = 0; i < (int)owners.size(); i++)
    if (OidIsValid(owners[i]) && std::find(dbs.begin(), dbs.end(), owners[i]) == dbs.end())
      release_slot(slot_at(i), owners[i]);
}

void launcher_loop() {
  std::map<Oid, BackgroundWorkerHandle *> workers;
  for (;;) {
    std::vector<Oid> owners = slot_owners();
    Databases dbs = read_databases();
    release_dropped(owners, dbs.all);
    for (Oid dboid : dbs.connectable) {
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
