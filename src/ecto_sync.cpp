/*
 * ecto_sync.cpp: module load, settings (GUCs) and the smallest SQL functions.
 *
 * The pipeline, one folder each (DESIGN.md, Files):
 *   pg/        the C++/PostgreSQL error boundary, the settings SQL runs under
 *   core/      server-free: shapes, associations, events, interests, JSON
 *   capture/   watch()/unwatch(); the row trigger, events queued at commit
 *   shmem/     shared memory: per-database event queues and the row cache
 *   worker/    the launcher and per-database workers: load once, notify
 *   value/     the catalog; load(): a value as jsonb; sync(): patch a value
 *              from an event and the cache; parts and JSON Patches (diff)
 *   held/      hold()/changes(): values held in the session, alone or shared
 */
#include "pg/pg_boundary.hpp"
#include "core/interest.hpp"
#include "settings.hpp"

#include <algorithm>
#include <climits>

extern "C" {
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

namespace ectosync {
Settings settings;
bool loaded_at_startup = false;
}  // namespace ectosync

using namespace ectosync;

static void define_settings() {
  DefineCustomIntVariable("ectosync.cache_size", "Shared memory for cached rows (all databases).",
                          nullptr, &settings.cache_size_kb, 64 * 1024, 1024, INT_MAX / 2,
                          PGC_POSTMASTER, GUC_UNIT_KB, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.queue_size",
                          "Shared memory for each database's queue and log of events.", nullptr,
                          &settings.queue_size_kb, 8 * 1024, 64, INT_MAX / 2, PGC_POSTMASTER,
                          GUC_UNIT_KB, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.event_log_size",
                          "Recent events per database that sync() can resolve.", nullptr,
                          &settings.event_log_size, 65536, 64, 16 * 1024 * 1024, PGC_POSTMASTER, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "ectosync.max_databases", "Databases that can use ecto_sync at the same time.", nullptr,
      &settings.max_databases, 8, 1, 256, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.max_xact_events",
                          "Events one transaction may queue; past it, its tables get a RELOAD "
                          "marker instead.",
                          nullptr, &settings.max_xact_events, 10000, 1, INT_MAX, PGC_SUSET, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.max_held_values",
                          "Values held in sessions (hold()) whose changes the worker notifies "
                          "them of, all databases; past it, held values listen to their tables.",
                          nullptr, &settings.max_held_values, 1024, 0, 1024 * 1024, PGC_POSTMASTER,
                          0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.interest_size",
                          "The Bloom filter of the keys each held value depends on, in shared "
                          "memory; larger ones wake holders of large filtered values less often "
                          "for rows they do not hold.",
                          nullptr, &settings.interest_bytes, 1024, 128, kMaxBloomBits / 8,
                          PGC_POSTMASTER, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.held_part_size",
                          "Held values are kept in parts of root rows of about this size; a "
                          "change rewrites only the parts it reaches.",
                          nullptr, &settings.held_part_bytes, 16 * 1024, 1, 64 * 1024 * 1024,
                          PGC_USERSET, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.held_shared_memory",
                          "Shared memory for held values that sessions share (same table and "
                          "assocs, no filter); 0: every session keeps its own copy.",
                          nullptr, &settings.held_shared_kb, 16 * 1024, 0, INT_MAX / 2,
                          PGC_POSTMASTER, GUC_UNIT_KB, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.batch_size", "Events the worker handles in one batch.", nullptr,
                          &settings.batch_size, 1000, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("ectosync.batch_delay",
                          "Under load, the least time between the worker's passes over the queue.",
                          nullptr, &settings.batch_delay_ms, 4, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.load_window",
                          "The worker reads a table's changed rows ahead of time while a session "
                          "used the table through ecto_sync within this time; -1: always.",
                          nullptr, &settings.load_window_s, 600, -1, INT_MAX, PGC_SIGHUP,
                          GUC_UNIT_S, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ectosync.max_role_share",
                          "The percentage of ectosync.max_held_values, of "
                          "ectosync.held_shared_memory and of each database's queue that one "
                          "role other than a superuser may take.",
                          nullptr, &settings.max_role_share, 25, 1, 100, PGC_SIGHUP, 0, nullptr,
                          nullptr, nullptr);
  DefineCustomBoolVariable("ectosync.load_unwatched",
                           "load() reads a value that no watch captures, for reading only: "
                           "it will not follow its tables.",
                           nullptr, &settings.load_unwatched, false, PGC_USERSET, 0, nullptr,
                           nullptr, nullptr);
  MarkGUCPrefixReserved("ectosync");
}

long ectosync::role_share(long total, Oid role) {
  if (OidIsValid(role) ? superuser_arg(role) : superuser()) return total;
  return std::max(
      1L, total / 100 * settings.max_role_share + total % 100 * settings.max_role_share / 100);
}

void _PG_init(void) {
  /* Loaded later (by CREATE EXTENSION, say), the library does nothing, not
   * even define its settings: PGC_POSTMASTER ones cannot be defined after
   * startup.  ectosync_require_preload() then explains what is wrong. */
  if (!process_shared_preload_libraries_in_progress) return;
  define_settings();
  loaded_at_startup = true;
  /*
   * Every hook and callback, as pg_stat_statements installs them.  This runs
   * in the postmaster: the backend-local callbacks registered here are
   * inherited by every backend and background worker it starts.
   */
  /* shmem_request_hook asks for ecto_sync's shared memory, shmem_startup_hook
   * lays it out (shmem/shmem.cpp). */
  shmem_init();
  /* Transaction and subtransaction callbacks: a transaction's captured
   * events are queued at commit, dropped at abort (capture/xact_buffer.cpp). */
  capture_init();
  /* The ProcessUtility hook that notes changes of roles: values under row
   * level security reload at their commit (capture/role_change.cpp). */
  role_change_init();
  /* The object access hook that notes policy triggers dropped with their
   * tables: the values under those policies reload at commit
   * (capture/policy_sources.cpp). */
  policy_sources_init();
  /* Relcache and schema callbacks and a transaction callback of the
   * backend's plan cache: stale plans are retired, and freed at transaction
   * end (value/catalog.cpp). */
  catalog_init();
  /* The parse analysis hook that checks every table name of generated SQL
   * against the oid it was taken from (pg/table_names.cpp). */
  table_names_init();
  /* Relcache and schema callbacks of the worker's table metadata, which
   * other backends leave empty (worker/table_meta.cpp). */
  worker_init();
  /* Transaction and subtransaction callbacks: a hold() that rolls back is
   * undone, as its LISTEN is, and a reply that rolls back is sent again
   * (held/rollback.cpp). */
  held_rollback_init();
  /* The launcher, a static background worker (worker/launcher.cpp). */
  worker_register_launcher();
  /*
   * Not here: the before_shmem_exit callbacks that free a backend's interest
   * entries (shmem/interest_registry.cpp) and its share of shared held
   * values (held/sharing.cpp).  A child of the postmaster drops the
   * postmaster's exit callbacks (on_exit_reset()), so each backend registers
   * them itself, when it first takes an entry or a share.
   */
}

ECTOSYNC_FUNCTION(ectosync_version) {
  (void)fcinfo;
  PG_RETURN_TEXT_P(cstring_to_text(ECTOSYNC_VERSION));
}

ECTOSYNC_FUNCTION(ectosync_require_preload) {
  (void)fcinfo;
  if (!loaded_at_startup)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("ecto_sync must be loaded via shared_preload_libraries"),
                    errdetail("Its background worker and shared-memory cache start with the "
                              "server."),
                    errhint("Add 'ecto_sync' to shared_preload_libraries in postgresql.conf and "
                            "restart the server.")));
  PG_RETURN_VOID();
}
